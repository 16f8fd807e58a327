"""self sign-up: clinics a practitioner signed up on the main domain, suspended clinics,
countries open to self sign-up, and the phone an invitation carries to the new account

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 16:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("signed_up_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("signup_email", sa.String(length=254), nullable=True))
        batch.add_column(sa.Column("signup_phone", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tenants_signup_email", "tenants", ["signup_email"])
    op.create_index("ix_tenants_signup_phone", "tenants", ["signup_phone"])
    with op.batch_alter_table("countries") as batch:
        batch.add_column(
            sa.Column("self_signup", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("staff_invitations") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=20), nullable=True))


def downgrade():
    with op.batch_alter_table("staff_invitations") as batch:
        batch.drop_column("phone")
    with op.batch_alter_table("countries") as batch:
        batch.drop_column("self_signup")
    op.drop_index("ix_tenants_signup_phone", "tenants")
    op.drop_index("ix_tenants_signup_email", "tenants")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("suspended_at")
        batch.drop_column("signup_phone")
        batch.drop_column("signup_email")
        batch.drop_column("signed_up_at")
