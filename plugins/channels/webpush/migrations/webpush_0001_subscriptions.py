"""webpush: patients' push subscriptions, one per browser or device; RLS

Revision ID: webpush_0001
Create Date: 2026-11-25 10:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows
from migrations import moved

revision = "webpush_0001"
down_revision = None
branch_labels = ("webpush",)
depends_on = None  # on the core: `relais db upgrade` upgrades the core first


def upgrade():
    if moved.exists("push_subscriptions"):
        return  # created by the core's 0004 before the move: kept as it is, rows and all
    op.create_table(
        "push_subscriptions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint", sa.String(length=2000), nullable=False),
        sa.Column("p256dh", sa.String(length=100), nullable=False),
        sa.Column("auth", sa.Text(), nullable=False),
        sa.Column("device", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"],
            ["patients.tenant_id", "patients.id"],
            name=op.f("fk_push_subscriptions_tenant_id_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_push_subscriptions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_push_subscriptions")),
        sa.UniqueConstraint(
            "tenant_id", "endpoint", name=op.f("uq_push_subscriptions_tenant_id_endpoint")
        ),
    )
    op.create_index(
        "ix_push_subscriptions_patient", "push_subscriptions", ["tenant_id", "patient_id"]
    )
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("push_subscriptions")


def downgrade():
    op.drop_table("push_subscriptions")
