"""reminders: row-level security forced on reminders: it holds for the table's owner too

Revision ID: reminders_0002
Revises: reminders_0001
Create Date: 2026-12-02 12:00:00

"""

from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "reminders_0002"
down_revision = "reminders_0001"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("reminders")  # enabled, forced, with its tenant policy


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE reminders NO FORCE ROW LEVEL SECURITY")
