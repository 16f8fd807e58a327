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


def starts(tenant, hours: Iterable[OpeningHours], minutes: int) -> list[datetime]:
    """Every slot start (UTC) of ``hours``: from opening, every ``minutes``, each slot ending
    by closing time."""
    where = zone(tenant)
    found = []
    step = timedelta(minutes=minutes)
    for row in hours:
        at = datetime.combine(row.day, row.opens, where)
        end = datetime.combine(row.day, row.closes, where)
        while at + step <= end:
            found.append(at.astimezone(UTC))
            at += step
    return sorted(found)


def capacity(centre: Centre) -> int:
    """Places in each slot of ``centre``: its lines times the places per line."""
    lines = db.session.scalar(
        sa.select(sa.func.count()).select_from(Line).where(Line.centre_id == centre.id)
    )
    return lines * centre.capacity


def _hours(centre_id: uuid.UUID, first: date, last: date) -> list[OpeningHours]:
    return list(
        db.session.scalars(
            sa.select(OpeningHours).where(
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


def _with_free(centre: Centre, every: list[datetime], places: int) -> list[Slot]:
    taken = dict(
        db.session.execute(
            sa.select(SlotCount.starts_at, SlotCount.booked).where(
                SlotCount.centre_id == centre.id,
                SlotCount.starts_at >= every[0],
                SlotCount.starts_at <= every[-1],
            )
        ).all()
    )
    return [Slot(at, places - taken.get(at, 0)) for at in every]


def open_slots(
    tenant, centre: Centre, vaccine_id: uuid.UUID, first: date, last: date
) -> list[Slot]:
    """The slots of ``centre`` from day ``first`` to ``last`` (local) with a place and a dose
    of the vaccine left, from now on. Four queries, whatever the number of slots."""
    places = capacity(centre)
    if places == 0:
        return []
    stock = {
        row.day: row.doses - row.booked
        for row in db.session.scalars(
            sa.select(Stock).where(
                Stock.centre_id == centre.id,
                Stock.vaccine_id == vaccine_id,
                Stock.day >= first,
                Stock.day <= last,
            )
        )
    }
    days = {day for day, left in stock.items() if left > 0}
    hours = [h for h in _hours(centre.id, first, last) if h.day in days]
    every = starts(tenant, hours, centre.slot_minutes)
    if not every:
        return []
    now = utcnow()
    found = []
    for slot in _with_free(centre, every, places):
        free = min(slot.free, stock[local_day(tenant, slot.starts_at)])
        if slot.starts_at > now and free > 0:
            found.append(Slot(slot.starts_at, free))
    return found
