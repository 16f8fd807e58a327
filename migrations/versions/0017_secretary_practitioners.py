"""secretary practitioners: the practitioners a secretary works for

A row per (secretary, practitioner): the secretary handles the requests of that
practitioner's patients (the messaging inbox shows them only theirs). No row: every
practitioner, as before.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 14:40:00

"""

import sqlalchemy as sa
from alembic import op

from migrations import rls

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TENANT_TABLES = ("secretary_practitioners",)


def upgrade():
    op.create_table(
        "secretary_practitioners",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("secretary_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "practitioner_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_secretary_practitioners_tenant_id_practitioner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "secretary_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_secretary_practitioners_tenant_id_secretary_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_secretary_practitioners_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "secretary_id", "practitioner_id", name=op.f("pk_secretary_practitioners")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.protect(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.unprotect(table)
    op.drop_table("secretary_practitioners")
