"""callbacks: attempts found by their event (the delivery log's purge deletes them with it)

Revision ID: callbacks_0002
Revises: callbacks_0001
Create Date: 2026-12-03 04:00:00

"""

from alembic import op

revision = "callbacks_0002"
down_revision = "callbacks_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_callback_attempts_event", "callback_attempts", ["tenant_id", "event_id"])


def downgrade():
    op.drop_index("ix_callback_attempts_event", table_name="callback_attempts")
