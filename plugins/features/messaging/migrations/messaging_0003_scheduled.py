"""messaging: staff messages scheduled for later (visible_at); deleted messages (deleted_at)

Revision ID: messaging_0003
Revises: messaging_0002
Create Date: 2026-12-02 12:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "messaging_0003"
down_revision = "messaging_0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "messaging_messages", sa.Column("visible_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "messaging_messages", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade():
    op.drop_column("messaging_messages", "deleted_at")
    op.drop_column("messaging_messages", "visible_at")
