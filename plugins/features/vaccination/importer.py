"""Import centres, their opening days and stock from CSV: every row, or nothing.

One row is one opening of a centre on one day, with the doses of a vaccine it has that day::

    code,name,kind,address,restricted,lines,capacity,slot_minutes,day,opens,closes,vaccine,doses
    PAR-01,Porte de Versailles,mega,1 place de la Porte,yes,20,1,5,2027-01-18,08:00,20:00,cov,2400

The centre's columns are read on its first row (later rows may leave them empty). A code the
clinic has already adds the rows' days to that centre. Every row is checked first; a wrong
row is reported with its line and column, and then nothing is written. What is right is
written in a few multi-row INSERTs, whatever the number of rows.
"""

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _

from core.plugin_api import ValidationError, db, insert_many, new_id, utcnow
from plugins.features.vaccination import setup
from plugins.features.vaccination.models import (
    MAX_CODE,
    Centre,
    CentreKind,
    Line,
    OpeningHours,
    Stock,
    Vaccine,
)

COLUMNS = (
    "code",
    "name",
    "kind",
    "address",
    "restricted",
    "lines",
    "capacity",
    "slot_minutes",
    "day",
    "opens",
    "closes",
    "vaccine",
    "doses",
)
KINDS = tuple(k.value for k in CentreKind)
MAX_SHOWN = 50  # errors a command prints
MAX_ROWS = 500_000
STEP = 1000  # rows between two progress reports
PART = 10_000  # rows per INSERT
ANALYZE_FROM = 100  # new centres from which their statistics are refreshed before the rows
YES = {"yes", "y", "true", "1", "oui", "ja", "sì", "si", "x"}
NO = {"", "no", "n", "false", "0", "non", "nein", "nee"}


@dataclass
class RowError:
    line: int
    field: str
    message: str


@dataclass
class Report:
    centres: int = 0
    openings: int = 0
    stock: int = 0
    errors: list[RowError] = field(default_factory=list)


class _Wrong(Exception):
    def __init__(self, column: str, message: str) -> None:
        self.column, self.message = column, message


def read(file) -> csv.DictReader:
    """The rows of a CSV file (comma or semicolon separated), keyed by column."""
    sample = file.read(4096)
    file.seek(0)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;")
    except csv.Error:  # one column, or nothing: the missing columns are reported
        dialect = csv.excel
    return csv.DictReader(file, dialect=dialect)


def _text(row: dict, column: str, limit: int, required: bool = True) -> str:
    value = (row.get(column) or "").strip()
    if required and not value:
        raise _Wrong(column, _("This column is empty."))
    if len(value) > limit:
        raise _Wrong(column, _("At most %(n)d characters.", n=limit))
    return value


def _centre(row: dict) -> dict:
    """A new centre's columns, checked by :func:`.setup.centre_values` (the set-up page's)."""
    restricted = (row.get("restricted") or "").strip().lower()
    if restricted not in YES | NO:
        raise _Wrong("restricted", _("Write yes or no."))
    return setup.centre_values(
        **{k: row.get(k) for k in ("name", "kind", "address", "lines", "capacity", "slot_minutes")},
        restricted=restricted in YES,
    )


def run(tenant, rows: Iterable[dict], progress: Callable[[int], object] | None = None) -> Report:
    """Check every row, then write them all in the caller's transaction (the caller commits)
    or, when a row is wrong, write nothing and list every wrong row."""
    report = Report()
    header = rows.fieldnames if isinstance(rows, csv.DictReader) else None
    rows = list(rows)
    if not rows:
        report.errors.append(RowError(1, "file", _("The file has no rows to import.")))
        return report
    if len(rows) > MAX_ROWS:
        report.errors.append(RowError(MAX_ROWS + 2, "file", _("At most %(n)d rows.", n=MAX_ROWS)))
        return report
    if missing := [c for c in COLUMNS if c not in (header or rows[0])]:
        report.errors.append(
            RowError(1, missing[0], _("This column is missing: %(name)s.", name=missing[0]))
        )
        return report
    vaccines = dict(db.session.execute(sa.select(Vaccine.code, Vaccine.id)).all())
    known = dict(db.session.execute(sa.select(Centre.code, Centre.id)).all())
    new_centres: dict[str, dict] = {}
    openings: dict[tuple, dict] = {}
    stock: dict[tuple, dict] = {}
    for n, row in enumerate(rows, start=2):  # line 1 holds the column names
        try:
            code = _text(row, "code", MAX_CODE)
            if code not in known and code not in new_centres:
                new_centres[code] = {"id": new_id(), **_centre(row)}
            centre_id = known.get(code) or new_centres[code]["id"]
            opening = setup.opening_values(row.get("day"), row.get("opens"), row.get("closes"))
            day, opens = opening["day"], opening["opens"]
            vaccine = (row.get("vaccine") or "").strip()
            if vaccine not in vaccines:
                raise _Wrong("vaccine", _("Unknown vaccine: %(code)s.", code=vaccine[:MAX_CODE]))
            doses = setup.doses_value(row.get("doses"))
            if (centre_id, day, opens) in openings:
                raise _Wrong("opens", _("This opening is on an earlier row too."))
            openings[(centre_id, day, opens)] = {
                "tenant_id": tenant.id,
                "centre_id": centre_id,
                **opening,
            }
            key = (centre_id, vaccines[vaccine], day)
            if key in stock:
                stock[key]["doses"] += doses  # two openings of one day share its stock
            else:
                stock[key] = {
                    "tenant_id": tenant.id,
                    "centre_id": centre_id,
                    "vaccine_id": vaccines[vaccine],
                    "day": day,
                    "doses": doses,
                    "booked": 0,
                }
        except _Wrong as wrong:
            report.errors.append(RowError(n, wrong.column, wrong.message))
        except ValidationError as wrong:  # the set-up's checks, naming the column
            report.errors.append(RowError(n, wrong.field, wrong.message))
        if progress and n % STEP == 0:
            progress(STEP)
    if progress:
        progress(len(rows) % STEP)
    if report.errors:
        return report
    _write(tenant, new_centres, list(openings.values()), list(stock.values()))
    report.centres, report.openings, report.stock = len(new_centres), len(openings), len(stock)
    return report


def _write(tenant, centres: dict[str, dict], openings: list[dict], stock: list[dict]) -> None:
    now = utcnow()
    insert_many(
        Centre.__table__,
        [
            {
                "tenant_id": tenant.id,
                "id": c["id"],
                "code": code,
                "name": c["name"],
                "kind": c["kind"],
                "address": c["address"],
                "restricted": c["restricted"],
                "slot_minutes": c["slot_minutes"],
                "capacity": c["capacity"],
                "created_at": now,
            }
            for code, c in centres.items()
        ],
    )
    if len(centres) >= ANALYZE_FROM and db.session.get_bind().dialect.name == "postgresql":
        # The foreign keys of the rows below are checked one by one against the centres;
        # without statistics, PostgreSQL looks each up through the (tenant_id, code) index,
        # reading half the clinic's centres every time (migration vaccination_0003).
        # A deployment whose role may not call it imports anyway, only slower.
        db.session.execute(
            sa.text(
                "SELECT CASE WHEN has_function_privilege('vaccination_analyze_centres()',"
                " 'EXECUTE') THEN vaccination_analyze_centres() END"
            )
        )
    insert_many(
        Line.__table__,
        [
            {
                "tenant_id": tenant.id,
                "id": new_id(),
                "centre_id": c["id"],
                "position": n,
                "name": str(n),
            }
            for c in centres.values()
            for n in range(1, c["lines"] + 1)
        ],
    )
    # Rows of new centres cannot conflict: a plain INSERT, without ON CONFLICT's speculative
    # insertion; those of centres the clinic has already skip the days they have.
    new = {c["id"] for c in centres.values()}
    for table, rows in ((OpeningHours.__table__, openings), (Stock.__table__, stock)):
        fresh = [r for r in rows if r["centre_id"] in new]
        known = [r for r in rows if r["centre_id"] not in new]
        # In parts of 10,000 rows: bounded memory on both sides, whatever the file.
        for start in range(0, len(fresh), PART):
            insert_many(table, fresh[start : start + PART])
        for start in range(0, len(known), PART):
            insert_many(table, known[start : start + PART], skip_conflicts=True)
