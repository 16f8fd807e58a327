"""messaging: patients a practitioner lets write first, whatever their follow-up; RLS

Revision ID: messaging_0007
Revises: messaging_0006
Create Date: 2026-12-02 15:30:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "messaging_0007"
down_revision = "messaging_0006"
branch_labels = None
depends_on = None


def upgrade():
    t = "messaging_allowed"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("allowed_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f(f"fk_{t}_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"],
            ["patients.tenant_id", "patients.id"],
            name=op.f(f"fk_{t}_tenant_id_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "practitioner_id"],
            ["users.tenant_id", "users.id"],
            name=op.f(f"fk_{t}_tenant_id_practitioner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "practitioner_id", "patient_id", name=op.f(f"pk_{t}")),
    )
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows(t)


def downgrade():
    op.drop_table("messaging_allowed")
