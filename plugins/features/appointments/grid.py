"""The agenda's time grid: a row per time slot, a column per practitioner (a day's agenda)
or per day (a practitioner's week). Each cell is free (bookable), busy (its appointments,
spanning their rows), past, or no time at all (the hour the clocks skip).

Times are the clinic's wall-clock times; a column's cell knows its aware start, which the
booking and move forms send back as a date and a time, as staff would type them.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

STEP = 15  # minutes per row
OPENS, CLOSES = 8 * 60, 19 * 60  # the rows always shown (minutes after midnight)
DAY = 24 * 60


@dataclass
class Column:
    """A practitioner's day."""

    practitioner: object  # a User
    day: date
    label: str


@dataclass
class Cell:
    column: Column
    index: int  # the column's position
    row: int  # the first row it covers
    at: datetime | None  # the slot's start in the clinic's zone; None: the clocks skip it
    rows: int = 1
    busy: bool = False  # active appointments hold it
    past: bool = False
    appointments: list = field(default_factory=list)  # busy ones, and cancelled ones here


@dataclass
class Row:
    minutes: int  # after midnight
    label: str
    cells: list  # a Cell, or None where a busy cell above spans this row


def minutes_of(at: datetime, day: date, zone: ZoneInfo) -> int:
    """Minutes after the start of ``day`` in the clinic's zone (24:00 for the next day)."""
    local = at.astimezone(zone)
    if local.date() > day:
        return DAY
    return local.hour * 60 + local.minute


def build(tenant, columns: list[Column], appointments, now: datetime, clock) -> list[Row]:
    """The rows of the grid for ``columns``, with ``appointments`` (of those practitioners
    and days; cancelled ones are shown where they started, holding nothing).

    :param clock: formats a time of day as the page reads it.
    """
    zone = ZoneInfo(tenant.timezone)
    placed = []  # (column index, first minute, end minute, appointment)
    for index, column in enumerate(columns):
        for appointment in appointments:
            if appointment.practitioner_id != column.practitioner.id:
                continue
            if appointment.starts_at.astimezone(zone).date() != column.day:
                continue
            start = minutes_of(appointment.starts_at, column.day, zone)
            end = max(minutes_of(appointment.ends_at, column.day, zone), start + 1)
            placed.append((index, start, end, appointment))
    first = min([OPENS] + [start - start % STEP for _i, start, _e, _a in placed])
    last = max([CLOSES] + [min(end, DAY) for _i, _s, end, _a in placed])
    slots = list(range(first, last, STEP))
    if not slots:
        return []
    grid = [
        _column(index, column, slots, placed, zone, now) for index, column in enumerate(columns)
    ]
    rows = []
    for r, minutes in enumerate(slots):
        label = clock(datetime.combine(date(2000, 1, 3), time(minutes // 60, minutes % 60), zone))
        rows.append(Row(minutes, label, [cells[r] for cells in grid]))
    return rows


def _column(index, column, slots, placed, zone, now) -> list:
    first = slots[0]

    def row_of(minutes: int) -> int:
        return min(max((minutes - first) // STEP, 0), len(slots) - 1)

    cells: list = [None] * len(slots)
    mine = sorted((p for p in placed if p[0] == index), key=lambda p: (p[1], p[2]))
    # Overlapping active appointments (where the clinic allows them) share one busy cell.
    clusters: list[list] = []
    for _i, start, end, appointment in mine:
        if not appointment.active:
            continue
        top, bottom = row_of(start), row_of(end - 1)
        if clusters and top <= clusters[-1][1]:
            clusters[-1][1] = max(clusters[-1][1], bottom)
            clusters[-1][2].append(appointment)
        else:
            clusters.append([top, bottom, [appointment]])
    covered = set()
    for top, bottom, held in clusters:
        cells[top] = Cell(column, index, top, _at(column.day, slots[top], zone), bottom - top + 1)
        cells[top].busy, cells[top].appointments = True, held
        covered.update(range(top + 1, bottom + 1))
    for r, minutes in enumerate(slots):
        if cells[r] is None and r not in covered:
            at = _at(column.day, minutes, zone)
            cells[r] = Cell(column, index, r, at, past=at is not None and at <= now)
    for _i, start, _end, appointment in mine:  # cancelled: where it started, holding nothing
        if not appointment.active:
            r = row_of(start)
            while cells[r] is None:  # inside a busy cell: with its appointments
                r -= 1
            cells[r].appointments.append(appointment)
    return [None if r in covered else cell for r, cell in enumerate(cells)]


def _at(day: date, minutes: int, zone: ZoneInfo) -> datetime | None:
    """The aware start of a wall-clock slot, or None when the clocks skip it."""
    wall = datetime.combine(day, time(minutes // 60, minutes % 60), zone)
    if wall.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None) != wall.replace(
        tzinfo=None
    ):
        return None
    return wall
