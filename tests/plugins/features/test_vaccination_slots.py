"""Slot starts follow the clinic's wall clock: on an ordinary day they are counted in UTC
(fast), on the night the clocks change step by step as before."""

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from plugins.features.vaccination.slots import starts

PARIS = SimpleNamespace(timezone="Europe/Paris")


def wall_clock_steps(day: date, opens: time, closes: time, minutes: int) -> list[datetime]:
    """The plain definition (the one before): from opening, every ``minutes`` of the clinic's
    clock, in time order."""
    where, step = ZoneInfo("Europe/Paris"), timedelta(minutes=minutes)
    at, end = datetime.combine(day, opens, where), datetime.combine(day, closes, where)
    found = []
    while at + step <= end:
        found.append(at.astimezone(UTC))
        at += step
    return sorted(found)


@pytest.mark.parametrize(
    ("day", "opens", "closes", "minutes"),
    [
        (date(2027, 1, 18), time(9), time(12), 10),  # winter
        (date(2027, 6, 14), time(8, 30), time(18, 25), 7),  # summer, a last short gap
        (date(2027, 3, 28), time(1), time(5), 30),  # clocks go forward at 02:00
        (date(2027, 10, 31), time(1), time(4), 20),  # clocks go back at 03:00
    ],
)
def test_slot_starts_keep_to_the_clinics_clock(day, opens, closes, minutes):
    row = SimpleNamespace(day=day, opens=opens, closes=closes)
    assert starts(PARIS, [row], minutes) == wall_clock_steps(day, opens, closes, minutes)


def test_a_morning_of_ten_minute_slots():
    row = SimpleNamespace(day=date(2027, 1, 18), opens=time(9), closes=time(12))
    found = starts(PARIS, [row], 10)
    assert len(found) == 18
    assert found[0] == datetime(2027, 1, 18, 8, tzinfo=UTC)
    assert found[-1] == datetime(2027, 1, 18, 10, 50, tzinfo=UTC)
