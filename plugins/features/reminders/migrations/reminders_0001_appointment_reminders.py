"""reminders: which outbox messages are an appointment's reminders; RLS

Revision ID: reminders_0001
Create Date: 2026-11-25 10:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows
from migrations import moved

revision = "reminders_0001"
down_revision = None
branch_labels = ("reminders",)
# Reminders are of appointments: their table refers to the appointments plugin's. (None on
# the core: `relais db upgrade` upgrades the core first.)
depends_on = "appointments_0001"


def upgrade():
    if moved.exists("reminders"):
        return  # created by the core's 0007 before the move: kept as it is, rows and all
    op.create_table(
        "reminders",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=False),
        sa.Column("minutes_before", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "appointment_id"],
            ["appointments.tenant_id", "appointments.id"],
            name=op.f("fk_reminders_tenant_id_appointment_id_appointments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "message_id"],
            ["messages.tenant_id", "messages.id"],
            name=op.f("fk_reminders_tenant_id_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_reminders_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "message_id", name=op.f("pk_reminders")),
    )
    op.create_index("ix_reminders_appointment", "reminders", ["tenant_id", "appointment_id"])
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("reminders")


def downgrade():
    op.drop_table("reminders")
