"""history without foreign keys: message_events and attempts no longer reference messages

Each insert into the append-only history (two or three rows per message) checked its
message with a query whose plan PostgreSQL caches per connection: a plan made while the
tables were small (analyzed empty, autovacuum off) stays a sequential scan, and sending slows
down as the outbox grows. The history's integrity is kept by the code: only
core/delivery/lifecycle.py writes events, only the dispatch writes attempts (for messages it
holds), and the retention deletes a message's history with it. The foreign keys to tenants
stay (a clinic's deletion still takes its history).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00

"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

HISTORY = ('message_events', 'attempts')


def upgrade():
    for table in HISTORY:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_tenant_id_message_id_messages', type_='foreignkey')


def downgrade():
    for table in HISTORY:
        # History whose message is gone (none, if only the retention deleted messages).
        op.execute(
            f'DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM messages m'  # noqa: S608
            f' WHERE m.tenant_id = {table}.tenant_id AND m.id = {table}.message_id)'
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                f'fk_{table}_tenant_id_message_id_messages', 'messages',
                ['tenant_id', 'message_id'], ['tenant_id', 'id'], ondelete='CASCADE',
            )
