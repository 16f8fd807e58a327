"""otp: row-level security forced on otp_challenges: it holds for the table's owner too

Revision ID: otp_0003
Revises: otp_0002
Create Date: 2026-12-02 12:00:00

"""

from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "otp_0003"
down_revision = "otp_0002"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("otp_challenges")  # enabled, forced, with its tenant policy


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE otp_challenges NO FORCE ROW LEVEL SECURITY")
