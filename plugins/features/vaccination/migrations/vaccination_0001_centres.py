"""vaccination: centres, lines, opening hours, vaccines, stock, campaigns, slot counters and
bookings; RLS forced on each

Revision ID: vaccination_0001
Create Date: 2026-12-02 14:30:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "vaccination_0001"
down_revision = None
branch_labels = ("vaccination",)
depends_on = None  # on the core: `relais db upgrade` upgrades the core first
# Foreign keys take their names from the models' naming convention (some are longer than
# PostgreSQL's 63 characters: the convention shortens them the same way).

TABLES = (
    "vaccination_centres",
    "vaccination_lines",
    "vaccination_opening_hours",
    "vaccination_vaccines",
    "vaccination_stock",
    "vaccination_campaigns",
    "vaccination_slots",
    "vaccination_bookings",
)


def _tenant(table: str) -> list:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    ]


def _centre(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "centre_id"],
        ["vaccination_centres.tenant_id", "vaccination_centres.id"],
        ondelete="CASCADE",
    )


def _vaccine(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "vaccine_id"],
        ["vaccination_vaccines.tenant_id", "vaccination_vaccines.id"],
    )


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=20)


def upgrade():
    t = "vaccination_centres"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            _enum("centrekind", "centre", "mega", "practice", "pharmacy", "mobile"),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f(f"uq_{t}_tenant_id_code")),
    )
    t = "vaccination_lines"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        _centre(t),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint(
            "tenant_id", "centre_id", "position", name=op.f(f"uq_{t}_tenant_id_centre_id_position")
        ),
    )
    t = "vaccination_opening_hours"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("opens", sa.Time(), nullable=False),
        sa.Column("closes", sa.Time(), nullable=False),
        sa.CheckConstraint("closes > opens", name=op.f(f"ck_{t}_closes_after_opening")),
        _centre(t),
        sa.PrimaryKeyConstraint("tenant_id", "centre_id", "day", "opens", name=op.f(f"pk_{t}")),
    )
    t = "vaccination_vaccines"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("doses", sa.Integer(), nullable=False),
        sa.Column("min_interval_days", sa.Integer(), nullable=False),
        sa.Column("ideal_interval_days", sa.Integer(), nullable=False),
        sa.Column("max_interval_days", sa.Integer(), nullable=False),
        sa.Column("min_age", sa.Integer(), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "min_interval_days <= ideal_interval_days AND ideal_interval_days <= max_interval_days",
            name=op.f(f"ck_{t}_interval_in_order"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f(f"uq_{t}_tenant_id_code")),
    )
    t = "vaccination_stock"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("vaccine_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("doses", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.CheckConstraint("booked <= doses", name=op.f(f"ck_{t}_within_stock")),
        _centre(t),
        _vaccine(t),
        sa.PrimaryKeyConstraint(
            "tenant_id", "centre_id", "vaccine_id", "day", name=op.f(f"pk_{t}")
        ),
    )
    t = "vaccination_campaigns"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("vaccine_id", sa.Uuid(), nullable=True),
        sa.Column("min_age", sa.Integer(), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _vaccine(t),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    t = "vaccination_slots"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "booked >= 0 AND booked <= capacity", name=op.f(f"ck_{t}_within_capacity")
        ),
        _centre(t),
        sa.PrimaryKeyConstraint("tenant_id", "centre_id", "starts_at", name=op.f(f"pk_{t}")),
    )
    t = "vaccination_bookings"
    op.create_table(
        t,
        *_tenant(t),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("series_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("line_id", sa.Uuid(), nullable=False),
        sa.Column("vaccine_id", sa.Uuid(), nullable=False),
        sa.Column("dose", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            _enum("bookingstatus", "booked", "done", "cancelled", "no_show"),
            nullable=False,
        ),
        sa.Column("batch", sa.String(length=40), nullable=True),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminder_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"],
            ["patients.tenant_id", "patients.id"],
            ondelete="CASCADE",
        ),
        _centre(t),
        _vaccine(t),
        sa.ForeignKeyConstraint(
            ["tenant_id", "line_id"],
            ["vaccination_lines.tenant_id", "vaccination_lines.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_vaccination_bookings_patient", t, ["tenant_id", "patient_id", "starts_at"])
    op.create_index("ix_vaccination_bookings_centre", t, ["tenant_id", "centre_id", "starts_at"])
    op.create_index("ix_vaccination_bookings_series", t, ["tenant_id", "series_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            protect_tenant_rows(table)


def downgrade():
    for table in reversed(TABLES):
        op.drop_table(table)
