"""otp: sign-up and login codes sent to phone numbers; RLS

Revision ID: otp_0001
Create Date: 2026-11-25 10:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows
from migrations import moved

revision = "otp_0001"
down_revision = None
branch_labels = ("otp",)
depends_on = None  # on the core: `relais db upgrade` upgrades the core first


def upgrade():
    if moved.exists("otp_challenges"):
        return  # created by the core's 0008 before the move: kept as it is, rows and all
    op.create_table(
        "otp_challenges",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("phone_digest", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("wrong_tries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_otp_challenges_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_otp_challenges")),
    )
    op.create_index(
        "ix_otp_challenges_phone", "otp_challenges", ["tenant_id", "phone_digest", "created_at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        protect_tenant_rows("otp_challenges")


def downgrade():
    op.drop_table("otp_challenges")
