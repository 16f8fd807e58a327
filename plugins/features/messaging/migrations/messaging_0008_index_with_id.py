"""messaging: the index of messages by conversation holds the id

PostgreSQL checks each row referring to a message (its attachments) with one cached query on
``(tenant_id, id)``. On tables never analyzed (a new deployment, autovacuum off) the planner
took the smallest index starting with ``tenant_id`` and read every message of the clinic for
each row written. Holding the id, it is wider than the primary key, which then wins (issue
14).

Revision ID: messaging_0008
Revises: messaging_0007
Create Date: 2026-12-03 04:15:00

"""

from alembic import op

revision = "messaging_0008"
down_revision = "messaging_0007"
branch_labels = None
depends_on = None

INDEXES = {"ix_messaging_messages_conversation": ("tenant_id", "conversation_id", "created_at")}


def upgrade():
    with op.batch_alter_table("messaging_messages", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, [*columns, "id"], unique=False)


def downgrade():
    with op.batch_alter_table("messaging_messages", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, list(columns), unique=False)
