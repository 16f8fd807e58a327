"""The free slots a patient page offers: the first :data:`DAYS_SHOWN` days that have some,
each day's radio buttons rendered once and kept :data:`FRESH_SECONDS` in the process.

A hundred patients opening the booking page at once ask for the same days of the same
centre: the slots are computed and rendered once every few seconds per worker, not once
per page. What is shown may be that stale; booking still takes each place with one
conditional UPDATE (:mod:`.booking`), so a slot taken meanwhile is refused, never
overbooked. A booking, move or cancellation made in this process forgets its centre's
days at once (:func:`forget`).
"""

import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby, islice

from markupsafe import Markup

from plugins.features.vaccination import slots

DAYS_SHOWN = 3  # days with free slots on one page: a mega-centre's day is hundreds of slots
FRESH_SECONDS = 2.0
MAX_KEPT = 512  # pages kept per process: a few centres' days, a few kilobytes each

_kept: dict[tuple, tuple[float, list["Day"]]] = {}


@dataclass(frozen=True)
class Day:
    """A day of free slots and its radio buttons (``<li>`` items) for the field ``name``.
    The values are ISO times, numbers and HH:MM (24-hour, as every language of Relais
    writes it): nothing to escape."""

    day: date
    radios: Markup


def _radios(name: str, found: list[tuple]) -> Markup:
    # ISO times, integers, HH:MM and a fixed field name: no character to escape.
    return Markup(  # noqa: S704
        "".join(
            f'<li><input type="radio" id="{name}-{key}" name="{name}" value="{value}" required>'
            f'<label for="{name}-{key}">{label}</label></li>'
            for value, key, label in found
        )
    )


def _days(tenant, centre, vaccine_id: uuid.UUID, first: date, last: date, name: str):
    zone = slots.zone(tenant)
    found = slots.open_slots(tenant, centre, vaccine_id, first, last, DAYS_SHOWN)
    local = ((s.starts_at, s.starts_at.astimezone(zone)) for s in found)
    return [
        Day(
            day,
            _radios(
                name,
                [
                    (at.isoformat(), int(at.timestamp()), wall.strftime("%H:%M"))
                    for at, wall in group
                ],
            ),
        )
        for day, group in islice(groupby(local, key=lambda pair: pair[1].date()), DAYS_SHOWN)
    ]


def days(tenant, centre, vaccine_id: uuid.UUID, first: date, last: date, name: str) -> list[Day]:
    """The first :data:`DAYS_SHOWN` days from ``first`` to ``last`` with a free slot of
    ``centre`` and a dose of the vaccine, as radio buttons named ``name``: computed at most
    once every :data:`FRESH_SECONDS` per process."""
    key = (tenant.id, tenant.timezone, centre.id, vaccine_id, first, last, name)
    now = time.monotonic()
    hit = _kept.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    shown = _days(tenant, centre, vaccine_id, first, last, name)
    if len(_kept) >= MAX_KEPT:
        _kept.clear()
    _kept[key] = (now + FRESH_SECONDS, shown)
    return shown


def forget(centre_id: uuid.UUID) -> None:
    """Drop the days kept of a centre (after a booking, a move or a cancellation here)."""
    for key in list(_kept):  # a copy: other threads may add pages meanwhile
        if key[2] == centre_id:
            _kept.pop(key, None)


def after(shown: list[Day], start: date, week: int = 7) -> date:
    """Where the next page of days starts: the day after the last one shown."""
    return shown[-1].day + timedelta(days=1) if shown else start + timedelta(days=week)
