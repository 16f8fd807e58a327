"""messaging: the appointment staff started a conversation from (for its templates)

Revision ID: messaging_0005
Revises: messaging_0004
Create Date: 2026-12-02 14:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "messaging_0005"
down_revision = "messaging_0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "messaging_conversations", sa.Column("about_appointment_id", sa.Uuid(), nullable=True)
    )


def downgrade():
    op.drop_column("messaging_conversations", "about_appointment_id")
