"""vaccination: the waitlist (freed slots offered first-come, held a few minutes); RLS

Revision ID: vaccination_0002
Revises: vaccination_0001
Create Date: 2026-12-02 14:40:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "vaccination_0002"
down_revision = "vaccination_0001"
branch_labels = None
depends_on = None


def upgrade():
    t = "vaccination_waitlist"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("vaccine_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "waiting",
                "offered",
                "booked",
                "expired",
                name="waitstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("slot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "centre_id"],
            ["vaccination_centres.tenant_id", "vaccination_centres.id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "vaccine_id"],
            ["vaccination_vaccines.tenant_id", "vaccination_vaccines.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index(
        "ix_vaccination_waitlist_queue", t, ["tenant_id", "centre_id", "vaccine_id", "created_at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows(t)


def downgrade():
    op.drop_table("vaccination_waitlist")
