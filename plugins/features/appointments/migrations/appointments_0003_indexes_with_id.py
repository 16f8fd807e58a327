"""appointments: the agenda's indexes hold the id

PostgreSQL checks each row referring to an appointment (its reminders) with one cached query
on ``(tenant_id, id)``. On tables never analyzed (a new deployment, autovacuum off) the
planner took the smallest index starting with ``tenant_id`` and read every appointment of
the clinic for each row written. Holding the id, they are wider than the primary key, which
then wins (issue 14).

Revision ID: appointments_0003
Revises: appointments_0002
Create Date: 2026-12-03 04:15:00

"""

from alembic import op

revision = "appointments_0003"
down_revision = "appointments_0002"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_appointments_practitioner": ("tenant_id", "practitioner_id", "starts_at"),
    "ix_appointments_starts_at": ("tenant_id", "starts_at"),
    "ix_appointments_patient": ("tenant_id", "patient_id", "starts_at"),
}


def upgrade():
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, [*columns, "id"], unique=False)


def downgrade():
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, list(columns), unique=False)
