"""provider health: each provider's share of its weight now, and the log of the shifts

Deployment-wide tables (no clinic's rows): a provider is one service for every clinic.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 15:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "provider_health",
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("factor", sa.Float(), nullable=False),
        sa.Column("share", sa.Float(), nullable=True),
        sa.Column("sample", sa.Integer(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_health")),
    )
    op.create_table(
        "provider_health_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("factor_from", sa.Float(), nullable=False),
        sa.Column("factor_to", sa.Float(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("sample", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_health_events")),
    )
    op.create_index("ix_provider_health_events_at", "provider_health_events", ["at"])


def downgrade():
    op.drop_index("ix_provider_health_events_at", table_name="provider_health_events")
    op.drop_table("provider_health_events")
    op.drop_table("provider_health")
