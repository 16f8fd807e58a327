"""appointments: the clinic's agenda (times in UTC, the reason encrypted, practice
software's external id unique per clinic); RLS

Revision ID: appointments_0001
Create Date: 2026-11-25 10:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows
from migrations import moved

revision = "appointments_0001"
down_revision = None
branch_labels = ("appointments",)
depends_on = None  # on the core: `relais db upgrade` upgrades the core first


def upgrade():
    if moved.exists("appointments"):
        return  # created by the core's 0006 before the move: kept as it is, rows and all
    op.create_table(
        "appointments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "booked",
                "confirmed",
                "cancelled",
                "no_show",
                "done",
                name="appointmentstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("location", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_appointments_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"],
            ["patients.tenant_id", "patients.id"],
            name=op.f("fk_appointments_tenant_id_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "practitioner_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_appointments_tenant_id_practitioner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_appointments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_appointments")),
        sa.UniqueConstraint(
            "tenant_id", "external_id", name=op.f("uq_appointments_tenant_id_external_id")
        ),
    )
    op.create_index(
        "ix_appointments_patient", "appointments", ["tenant_id", "patient_id", "starts_at"]
    )
    op.create_index(
        "ix_appointments_practitioner",
        "appointments",
        ["tenant_id", "practitioner_id", "starts_at"],
    )
    op.create_index("ix_appointments_starts_at", "appointments", ["tenant_id", "starts_at"])
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("appointments")


def downgrade():
    op.drop_table("appointments")
