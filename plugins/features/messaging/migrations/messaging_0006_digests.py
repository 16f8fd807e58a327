"""messaging: when each practitioner last got the weekly e-mail of unhandled requests; RLS

Revision ID: messaging_0006
Revises: messaging_0005
Create Date: 2026-12-02 14:50:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "messaging_0006"
down_revision = "messaging_0005"
branch_labels = None
depends_on = None


def upgrade():
    t = "messaging_digests"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f(f"fk_{t}_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "practitioner_id"],
            ["users.tenant_id", "users.id"],
            name=op.f(f"fk_{t}_tenant_id_practitioner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "practitioner_id", name=op.f(f"pk_{t}")),
    )
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows(t)


def downgrade():
    op.drop_table("messaging_digests")
