"""campaigns: when each plan and chunk job was last queued (the sweep queues lost ones again)

Revision ID: campaigns_0002
Revises: campaigns_0001
Create Date: 2026-12-03 03:50:00

"""

import sqlalchemy as sa
from alembic import op

revision = "campaigns_0002"
down_revision = "campaigns_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("campaign_chunks", sa.Column("queued_at", sa.DateTime(timezone=True)))
    op.add_column("campaigns", sa.Column("plan_queued_at", sa.DateTime(timezone=True)))


def downgrade():
    op.drop_column("campaigns", "plan_queued_at")
    op.drop_column("campaign_chunks", "queued_at")
