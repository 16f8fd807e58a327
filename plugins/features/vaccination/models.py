"""The vaccination tables: centres, their lines and opening hours, vaccines with their dose
schedule, stock per centre and day, campaigns (who is eligible), slot counters and bookings.

Slots are not rows: they follow from a centre's opening hours and its slot length. A slot
gets a counter row (:class:`SlotCount`) the first time someone books it: one ``INSERT ...
ON CONFLICT DO UPDATE ... WHERE booked < capacity`` creates it with its first place taken or
takes one more, so two requests can never both take the last place. Times are aware UTC
datetimes; opening hours are local times of the clinic's time zone.
"""

import uuid
from datetime import date, datetime, time
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.plugin_api import TenantOwned, UTCDateTime, created_column, db, id_column

MAX_CODE = 40
MAX_NAME = 200
MAX_ADDRESS = 300
MAX_BATCH = 40


class CentreKind(StrEnum):
    CENTRE = "centre"  # a vaccination centre
    MEGA = "mega"  # a mega-centre
    PRACTICE = "practice"  # a GP practice
    PHARMACY = "pharmacy"
    MOBILE = "mobile"  # a mobile unit


class BookingStatus(StrEnum):
    BOOKED = "booked"
    DONE = "done"  # the dose was given
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


def _values(enum) -> list[str]:
    return [m.value for m in enum]


def _centre_fk(*columns: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", *columns],
        ["vaccination_centres.tenant_id", "vaccination_centres.id"],
        ondelete="CASCADE",
    )


def _vaccine_fk(column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column], ["vaccination_vaccines.tenant_id", "vaccination_vaccines.id"]
    )


class Centre(TenantOwned, db.Model):
    """Where doses are given: its kind, address, slot length and places per line and slot."""

    __tablename__ = "vaccination_centres"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "code"),)

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(sa.String(MAX_CODE))  # the operator's own reference
    name: Mapped[str] = mapped_column(sa.String(MAX_NAME))
    kind: Mapped[CentreKind] = mapped_column(
        sa.Enum(CentreKind, native_enum=False, length=20, values_callable=_values)
    )
    address: Mapped[str] = mapped_column(sa.String(MAX_ADDRESS), default="")
    # Only patients of an open campaign may book (a mega-centre's restricted agenda).
    restricted: Mapped[bool] = mapped_column(default=False)
    slot_minutes: Mapped[int] = mapped_column(default=10)
    capacity: Mapped[int] = mapped_column(default=1)  # places per line and slot
    created_at: Mapped[datetime] = created_column()


class Line(TenantOwned, db.Model):
    """A line (booth) of a centre: each slot has ``capacity`` places per line."""

    __tablename__ = "vaccination_lines"
    __table_args__ = (
        _centre_fk("centre_id"),
        sa.UniqueConstraint("tenant_id", "centre_id", "position"),
    )

    id: Mapped[uuid.UUID] = id_column()
    centre_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(sa.String(60))


class OpeningHours(TenantOwned, db.Model):
    """A centre opens on ``day`` from ``opens`` to ``closes`` (local times)."""

    __tablename__ = "vaccination_opening_hours"
    __table_args__ = (
        _centre_fk("centre_id"),
        sa.CheckConstraint("closes > opens", name="closes_after_opening"),
    )

    centre_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    opens: Mapped[time] = mapped_column(primary_key=True)
    closes: Mapped[time]


class Vaccine(TenantOwned, db.Model):
    """A vaccine and its dose schedule: days between doses (minimum, ideal, maximum) and the
    ages it is given at."""

    __tablename__ = "vaccination_vaccines"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "code"),
        sa.CheckConstraint(
            "min_interval_days <= ideal_interval_days AND ideal_interval_days <= max_interval_days",
            name="interval_in_order",
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(sa.String(MAX_CODE))
    name: Mapped[str] = mapped_column(sa.String(MAX_NAME))
    doses: Mapped[int] = mapped_column(default=2)
    min_interval_days: Mapped[int] = mapped_column(default=0)
    ideal_interval_days: Mapped[int] = mapped_column(default=0)
    max_interval_days: Mapped[int] = mapped_column(default=0)
    min_age: Mapped[int | None]
    max_age: Mapped[int | None]


class Stock(TenantOwned, db.Model):
    """Doses of a vaccine a centre has for a day; ``booked`` counts those promised."""

    __tablename__ = "vaccination_stock"
    __table_args__ = (
        _centre_fk("centre_id"),
        _vaccine_fk("vaccine_id"),
        sa.CheckConstraint("booked <= doses", name="within_stock"),
    )

    centre_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    vaccine_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    doses: Mapped[int]
    booked: Mapped[int] = mapped_column(default=0)


class Campaign(TenantOwned, db.Model):
    """Who may book now: an age band and, when ``attributes`` is not empty, patients with at
    least one of them (a priority group: chronic disease, pregnancy follow-up...)."""

    __tablename__ = "vaccination_campaigns"
    __table_args__ = (_vaccine_fk("vaccine_id"),)

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(sa.String(MAX_NAME))
    vaccine_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # None: every vaccine
    min_age: Mapped[int | None]
    max_age: Mapped[int | None]
    attributes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)


class SlotCount(TenantOwned, db.Model):
    """The places taken in one slot of a centre: created on the slot's first booking."""

    __tablename__ = "vaccination_slots"
    __table_args__ = (
        _centre_fk("centre_id"),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="within_capacity"),
    )

    centre_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    capacity: Mapped[int]
    booked: Mapped[int] = mapped_column(default=0)


class Booking(TenantOwned, db.Model):
    """One dose of a patient: a place in a slot of a centre, on a line. The doses booked
    together share their ``series_id``."""

    __tablename__ = "vaccination_bookings"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
        _centre_fk("centre_id"),
        _vaccine_fk("vaccine_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "line_id"], ["vaccination_lines.tenant_id", "vaccination_lines.id"]
        ),
        sa.Index("ix_vaccination_bookings_patient", "tenant_id", "patient_id", "starts_at"),
        sa.Index("ix_vaccination_bookings_centre", "tenant_id", "centre_id", "starts_at"),
        sa.Index("ix_vaccination_bookings_series", "tenant_id", "series_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    series_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    centre_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    line_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    vaccine_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    dose: Mapped[int]
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[BookingStatus] = mapped_column(
        sa.Enum(BookingStatus, native_enum=False, length=20, values_callable=_values),
        default=BookingStatus.BOOKED,
    )
    batch: Mapped[str | None] = mapped_column(sa.String(MAX_BATCH))
    given_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminder_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # the outbox message
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()


class WaitStatus(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"  # a freed slot is held for the patient until ``held_until``
    BOOKED = "booked"
    EXPIRED = "expired"  # the offer ran out: the patient may join again


class WaitlistEntry(TenantOwned, db.Model):
    """A patient waiting for a place at a full centre; the first to wait is offered the
    next freed slot, held for them a few minutes."""

    __tablename__ = "vaccination_waitlist"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
        _centre_fk("centre_id"),
        _vaccine_fk("vaccine_id"),
        sa.Index(
            "ix_vaccination_waitlist_queue", "tenant_id", "centre_id", "vaccine_id", "created_at"
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    centre_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    vaccine_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    status: Mapped[WaitStatus] = mapped_column(
        sa.Enum(WaitStatus, native_enum=False, length=20, values_callable=_values),
        default=WaitStatus.WAITING,
    )
    slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the slot held
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()
