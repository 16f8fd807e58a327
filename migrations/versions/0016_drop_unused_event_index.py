"""message history: the index on ``message_events.at`` dropped

No query reads the history by time: a message's page reads its own steps (by
``(tenant_id, message_id)``), the retention deletes them with their message. The index cost
a B-tree insert for each of the two or three steps every message writes (issue 14).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 15:00:00

"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.drop_index("ix_message_events_at")


def downgrade():
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.create_index("ix_message_events_at", ["at"], unique=False)
