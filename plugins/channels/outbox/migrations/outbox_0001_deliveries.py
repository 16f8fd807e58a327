"""outbox: the development outbox's deliveries, one per message and channel; RLS

Revision ID: outbox_0001
Create Date: 2026-11-25 10:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows
from migrations import moved

revision = "outbox_0001"
down_revision = None
branch_labels = ("outbox",)
depends_on = None  # on the core: `relais db upgrade` upgrades the core first


def upgrade():
    if moved.exists("outbox_deliveries"):
        return  # created by the core's 0002 before the move: kept as it is, rows and all
    op.create_table(
        "outbox_deliveries",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_outbox_deliveries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_outbox_deliveries")),
        sa.UniqueConstraint(
            "tenant_id",
            "message_id",
            "channel",
            name=op.f("uq_outbox_deliveries_tenant_id_message_id_channel"),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("outbox_deliveries")


def downgrade():
    op.drop_table("outbox_deliveries")
