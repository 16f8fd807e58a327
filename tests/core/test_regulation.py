"""Quiet hours and verdicts: the shared rules regulation plugins build on."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from core.regulation import QuietHours

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("sent", "goes"),
    [
        (paris(2026, 11, 21, 19, 59), paris(2026, 11, 21, 19, 59)),  # Saturday, in the window
        (paris(2026, 11, 21, 20, 0), paris(2026, 11, 23, 8, 0)),  # Saturday 20:00 → Monday
        (paris(2026, 11, 22, 12, 0), paris(2026, 11, 23, 8, 0)),  # Sunday
        (paris(2026, 11, 23, 7, 59), paris(2026, 11, 23, 8, 0)),  # before opening
        (paris(2026, 4, 4, 20, 0), paris(2026, 4, 7, 8, 0)),  # Easter Monday → Tuesday
        (paris(2026, 3, 28, 21, 0), paris(2026, 3, 30, 8, 0)),  # across the change to summer time
        (paris(2026, 10, 24, 23, 0), paris(2026, 10, 26, 8, 0)),  # across the change to winter time
        (paris(2026, 12, 31, 20, 30), paris(2027, 1, 2, 8, 0)),  # New Year's Day, next year
    ],
)
def test_france_defers_to_the_next_allowed_minute(sent, goes):
    assert QuietHours().next_allowed(sent.astimezone(UTC), "Europe/Paris", "FR") == goes


def test_the_window_is_in_the_patients_time_zone():
    hours = QuietHours()
    # 07:30 in Paris is 08:30 in Athens: allowed there, not in Paris.
    at = paris(2026, 11, 23, 7, 30).astimezone(UTC)
    assert hours.next_allowed(at, "Europe/Athens", "FR") == at
    assert hours.next_allowed(at, "Europe/Paris", "FR") == paris(2026, 11, 23, 8, 0)


def test_regional_holidays_count():
    # Epiphany (6 January) is a holiday in Bavaria, not in Berlin.
    at = datetime(2026, 1, 6, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    hours = QuietHours(end=time(20))
    assert hours.next_allowed(at, "Europe/Berlin", "DE", "BE") == at
    assert hours.next_allowed(at, "Europe/Berlin", "DE", "BY") == datetime(
        2026, 1, 7, 8, 0, tzinfo=ZoneInfo("Europe/Berlin")
    )


def test_a_window_that_never_opens_is_an_error():
    with pytest.raises(ValueError, match="never open"):
        QuietHours(days=frozenset()).next_allowed(paris(2026, 1, 5, 9, 0), "Europe/Paris", "FR")
