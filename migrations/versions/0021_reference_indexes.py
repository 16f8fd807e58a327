"""indexes that start like a reference hold all of its columns: patients by name, messages by date

Every table that refers to a patient (messages, consents, appointments, bookings...) has
PostgreSQL check the patient at each insert with one cached query on ``(tenant_id, id)``.
On tables never analyzed (a new deployment, autovacuum off), the planner picked the
smallest index starting with ``tenant_id``, the one on ``(tenant_id, last_name)``, and
read every patient of the clinic for each message written (0.17 ms a message at 1,000
patients, growing with the clinic). Holding the list's whole order, the name index is
wider than the primary key, so the key wins that choice whatever the statistics; and the
patient list (ordered by last name, first name, id) reads it without a sort (issue 14).

The same for messages (referred to by reminders): their index by date holds the id.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 04:00:00

"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index("ix_patients_tenant_last_name")
        batch_op.create_index(
            "ix_patients_tenant_name", ["tenant_id", "last_name", "first_name", "id"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_tenant_created")
        batch_op.create_index(
            "ix_messages_tenant_created", ["tenant_id", "created_at", "id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_tenant_created")
        batch_op.create_index("ix_messages_tenant_created", ["tenant_id", "created_at"], unique=False)
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index("ix_patients_tenant_name")
        batch_op.create_index(
            "ix_patients_tenant_last_name", ["tenant_id", "last_name"], unique=False
        )
