"""Slots: computed from a centre's opening hours and slot length, never stored one by one.

A slot's places are its centre's lines times the places per line; a slot's counter row
(:class:`~.models.SlotCount`) appears on its first booking. What a patient is offered is the
slots of days with stock of the vaccine left, minus the full ones and the past.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from core.plugin_api import db, utcnow
from plugins.features.vaccination.models import Centre, Line, OpeningHours, SlotCount, Stock


@dataclass(frozen=True)
class Slot:
    """A slot with places left: when it starts (UTC) and how many places are free."""

    starts_at: datetime
    free: int


def zone(tenant) -> ZoneInfo:
    return ZoneInfo(tenant.timezone)


def local_day(tenant, moment: datetime) -> date:
    """The clinic's calendar day of ``moment``."""
    return moment.astimezone(zone(tenant)).date()


def starts(tenant, hours: Iterable, minutes: int) -> list[datetime]:
    """Every slot start (UTC) of ``hours`` (rows with ``day``, ``opens``, ``closes``): from
    opening, every ``minutes``, each slot ending by closing time."""
    where = zone(tenant)
    found = []
    step = timedelta(minutes=minutes)
    for row in hours:
        at = datetime.combine(row.day, row.opens, where)
        end = datetime.combine(row.day, row.closes, where)
        if at.utcoffset() == end.utcoffset():  # no clock change inside: count in UTC
            at, end = at.astimezone(UTC), end.astimezone(UTC)
            count = int((end - at) / step)
            found.extend(at + k * step for k in range(count))
            continue
        while at + step <= end:  # wall-clock steps across the change, as the clinic lives it
            found.append(at.astimezone(UTC))
            at += step
    return sorted(found)


def capacity(centre: Centre) -> int:
    """Places in each slot of ``centre``: its lines times the places per line."""
    lines = db.session.scalar(
        sa.select(sa.func.count()).select_from(Line).where(Line.centre_id == centre.id)
    )
    return lines * centre.capacity


def _hours(centre_id: uuid.UUID, first: date, last: date) -> list:
    """The opening hours of a centre from day ``first`` to ``last``: plain rows (``day``,
    ``opens``, ``closes``), not ORM objects (a mega-centre has a row per day and opening)."""
    return list(
        db.session.execute(
            sa.select(OpeningHours.day, OpeningHours.opens, OpeningHours.closes).where(
                OpeningHours.centre_id == centre_id,
                OpeningHours.day >= first,
                OpeningHours.day <= last,
            )
        )
    )


def is_slot(tenant, centre: Centre, moment: datetime) -> bool:
    """Whether a slot of ``centre`` starts at ``moment``."""
    day = local_day(tenant, moment)
    # A night opening started the day before would be a slot too: look one day back.
    hours = _hours(centre.id, day - timedelta(days=1), day)
    return moment.astimezone(UTC) in starts(tenant, hours, centre.slot_minutes)


def day_slots(tenant, centre: Centre, first: date, last: date) -> list[Slot]:
    """Every slot of ``centre`` from day ``first`` to ``last`` (local) with its free places,
    full ones included. Three queries, whatever the number of slots."""
    places = capacity(centre)
    every = starts(tenant, _hours(centre.id, first, last), centre.slot_minutes)
    if not every or places == 0:
        return []
    return _with_free(centre, every, places)


def _taken(centre: Centre, first: datetime, last: datetime) -> dict[datetime, int]:
    """Places booked in the slots of ``centre`` starting from ``first`` to ``last``."""
    return dict(
        db.session.execute(
            sa.select(SlotCount.starts_at, SlotCount.booked).where(
                SlotCount.centre_id == centre.id,
                SlotCount.starts_at >= first,
                SlotCount.starts_at <= last,
            )
        ).all()
    )


def _with_free(centre: Centre, every: list[datetime], places: int) -> list[Slot]:
    taken = _taken(centre, every[0], every[-1])
    return [Slot(at, places - taken.get(at, 0)) for at in every]


def open_slots(
    tenant,
    centre: Centre,
    vaccine_id: uuid.UUID,
    first: date,
    last: date,
    days: int | None = None,
) -> list[Slot]:
    """The slots of ``centre`` from day ``first`` to ``last`` (local) with a place and a dose
    of the vaccine left, from now on; with ``days``, those of the first ``days`` days that
    have one (what a page shows: the later days' slots are not even computed). Four queries,
    whatever the number of slots."""
    places = capacity(centre)
    if places == 0:
        return []
    stock = dict(
        db.session.execute(
            sa.select(Stock.day, Stock.doses - Stock.booked).where(
                Stock.centre_id == centre.id,
                Stock.vaccine_id == vaccine_id,
                Stock.day >= first,
                Stock.day <= last,
            )
        ).all()
    )
    # An opening lies inside its day (closes > opens): its slots are of that day, and the
    # openings in (day, opens) order give the slots in time order.
    hours = sorted(
        (h for h in _hours(centre.id, first, last) if stock.get(h.day, 0) > 0),
        key=lambda h: (h.day, h.opens),
    )
    if not hours:
        return []
    where = zone(tenant)
    taken = _taken(
        centre,
        datetime.combine(hours[0].day, hours[0].opens, where),
        datetime.combine(hours[-1].day, hours[-1].closes, where),
    )
    now = utcnow()
    found: list[Slot] = []
    shown: set[date] = set()
    for row in hours:
        if days is not None and len(shown) >= days and row.day not in shown:
            break
        for at in starts(tenant, [row], centre.slot_minutes):
            free = min(places - taken.get(at, 0), stock[row.day])
            if at > now and free > 0:
                found.append(Slot(at, free))
                shown.add(row.day)
    return found
