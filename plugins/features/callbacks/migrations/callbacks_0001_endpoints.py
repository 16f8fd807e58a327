"""callbacks: endpoints (secrets encrypted), events, attempts; RLS

Revision ID: callbacks_0001
Create Date: 2026-12-02 15:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "callbacks_0001"
down_revision = None
branch_labels = ("callbacks",)
depends_on = None  # on the core only (tenants)

TABLES = ("callback_endpoints", "callback_events", "callback_attempts")


def _tenant(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade():
    t = "callback_endpoints"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        _when("previous_until", nullable=True),
        _when("created_at"),
        _tenant(t),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("tenant_id", name="uq_callback_endpoints_tenant_id"),
    )
    t = "callback_events"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        _when("at"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at"),
        _when("lease_until", nullable=True),
        _when("created_at"),
        _tenant(t),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_callback_events_due", t, ["state", "next_attempt_at"])
    op.create_index("ix_callback_events_subject", t, ["tenant_id", "subject_id", "at", "id"])
    t = "callback_attempts"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        _when("at"),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        _tenant(t),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_callback_attempts_recent", t, ["tenant_id", "at"])
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            protect_tenant_rows(table)


def downgrade():
    for table in reversed(TABLES):
        op.drop_table(table)
