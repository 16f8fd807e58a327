"""messaging: the appointment whose follow-up message started a conversation (one each)

Revision ID: messaging_0004
Revises: messaging_0003
Create Date: 2026-12-02 12:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "messaging_0004"
down_revision = "messaging_0003"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("messaging_conversations", sa.Column("appointment_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ux_messaging_conversations_appointment",
        "messaging_conversations",
        ["tenant_id", "appointment_id"],
        unique=True,
        postgresql_where=sa.text("appointment_id IS NOT NULL"),
        sqlite_where=sa.text("appointment_id IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ux_messaging_conversations_appointment", "messaging_conversations")
    op.drop_column("messaging_conversations", "appointment_id")
