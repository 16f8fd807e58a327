"""appointments: row-level security forced on appointments: it holds for the table's owner too

Revision ID: appointments_0002
Revises: appointments_0001
Create Date: 2026-12-02 12:00:00

"""

from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "appointments_0002"
down_revision = "appointments_0001"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("appointments")  # enabled, forced, with its tenant policy


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE appointments NO FORCE ROW LEVEL SECURITY")
