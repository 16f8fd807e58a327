"""campaigns: campaigns, their chunks and recipients; RLS

Revision ID: campaigns_0001
Create Date: 2026-12-02 14:30:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "campaigns_0001"
down_revision = None
branch_labels = ("campaigns",)
depends_on = None  # on the core only (patients, messages): `relais db upgrade` runs it first

TABLES = ("campaigns", "campaign_chunks", "campaign_recipients")


def _tenant(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _campaign(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "campaign_id"],
        ["campaigns.tenant_id", "campaigns.id"],
        name=op.f(f"fk_{table}_tenant_id_campaign_id_campaigns"),
        ondelete="CASCADE",
    )


def upgrade():
    t = "campaigns"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("templates", sa.JSON(), nullable=False),
        sa.Column("default_language", sa.String(length=5), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("excluded", sa.JSON(), nullable=True),
        sa.Column("country_run", sa.Uuid(), nullable=True),
        _tenant(t),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_campaigns_created", t, ["tenant_id", "created_at"])
    op.create_index(op.f("ix_campaigns_country_run"), t, ["country_run"])

    t = "campaign_chunks"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("after_id", sa.Uuid(), nullable=True),
        sa.Column("last_id", sa.Uuid(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        _tenant(t),
        _campaign(t),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id", "number", name=op.f(f"pk_{t}")),
    )

    t = "campaign_recipients"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        _tenant(t),
        _campaign(t),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"],
            ["patients.tenant_id", "patients.id"],
            name=op.f(f"fk_{t}_tenant_id_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id", "patient_id", name=op.f(f"pk_{t}")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            protect_tenant_rows(table)


def downgrade():
    for table in reversed(TABLES):
        op.drop_table(table)
