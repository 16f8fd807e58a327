"""staff invitations: the operator invites a clinic's first admin by an e-mailed link

One row per clinic (a new invitation replaces the link of the one before); the link's nonce
is kept as its SHA-256 digest, never in clear.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 11:30:00

"""

import sqlalchemy as sa
from alembic import op

from migrations import rls

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TENANT_TABLES = ("staff_invitations",)


def upgrade():
    op.create_table(
        "staff_invitations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("nonce_digest", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_staff_invitations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_staff_invitations")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.protect(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.unprotect(table)
    op.drop_table("staff_invitations")
