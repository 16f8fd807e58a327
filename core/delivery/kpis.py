"""Delivery KPIs over a window: how much was sent and delivered, how fast, how available the
providers were, by country, clinic, channel and provider.

Everything is counted by the database: one aggregate query over the messages created in the
window, one over the provider attempts made in it, each grouped in SQL; Python only merges the
groups. Percentiles use PostgreSQL's ``percentile_cont``; on SQLite (the embedded demo) they
are computed in Python over a bounded sample of the window's delivered messages.

Definitions (C7):
- sent: accepted by a provider (``sent_at`` set), whatever came next;
- delivered / undelivered: as the provider's receipt said; failed: no provider took it;
- delivery rate: delivered / sent;
- deferred / denied: messages a country's rules deferred (quiet hours) or refused (no
  consent, an opt-out, a sender the country refuses);
- time to reception: ``delivered_at`` minus when the message was due (its creation, or its
  ``not_before`` when scheduled later); mean, p50, p95, p99, and the share within 5 s;
- provider availability: the share of settled attempts that were not temporary failures
  (5xx, throttling, timeouts whatever a later lookup found: the dispatcher's ``UNANSWERED``);
  a permanent refusal is an answer, not an outage; a call still in flight is not counted.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql

from core import validation as check
from core.db import db, utcnow
from core.delivery.dispatch import IN_FLIGHT, UNANSWERED
from core.delivery.expressions import current_channel, due_at, seconds_between
from core.delivery.models import Attempt, Message, MessageStatus
from core.delivery.presenters import parse_time
from core.delivery.providers import ACCEPTED, PERMANENT, UNREACHABLE
from core.errors import ValidationError
from tenants.models import Tenant

GROUPS = ("country", "clinic", "channel", "provider")
WITHIN = 5.0  # seconds: "98 % received within 5 s"
QUANTILES = (0.5, 0.95, 0.99)
SAMPLE = 100_000  # delivered messages whose times SQLite brings back to compute percentiles
MAX_WINDOW = timedelta(days=92)
WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}


@dataclass
class Kpi:
    """The figures of one group (``key`` holds one value per grouping asked, None if none)."""

    key: tuple[str | None, ...]
    messages: int = 0  # created in the window, whatever became of them
    sent: int = 0
    delivered: int = 0
    undelivered: int = 0
    failed: int = 0
    deferred: int = 0
    denied: int = 0
    timed: int = 0  # delivered with a delivery time
    mean_s: float | None = None
    quantiles_s: dict[float, float | None] = field(default_factory=dict)
    within: int = 0  # delivered within WITHIN seconds
    attempts: int = 0
    temporary_failures: int = 0

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.sent if self.sent else None

    @property
    def within_share(self) -> float | None:
        return self.within / self.timed if self.timed else None

    @property
    def availability(self) -> float | None:
        return 1 - self.temporary_failures / self.attempts if self.attempts else None

    @property
    def p50_s(self) -> float | None:
        return self.quantiles_s.get(0.5)

    @property
    def p95_s(self) -> float | None:
        return self.quantiles_s.get(0.95)

    @property
    def p99_s(self) -> float | None:
        return self.quantiles_s.get(0.99)

    def as_json(self, by: Sequence[str] = ()) -> dict[str, Any]:
        return {
            **dict(zip(by, self.key, strict=True)),
            "messages": self.messages,
            "sent": self.sent,
            "delivered": self.delivered,
            "undelivered": self.undelivered,
            "failed": self.failed,
            "deferred": self.deferred,
            "denied": self.denied,
            "delivery_rate": _round(self.delivery_rate),
            "time_to_reception_s": {
                "mean": _round(self.mean_s),
                "p50": _round(self.p50_s),
                "p95": _round(self.p95_s),
                "p99": _round(self.p99_s),
            },
            "within_5s": _round(self.within_share),
            "attempts": self.attempts,
            "temporary_failures": self.temporary_failures,
            "availability": _round(self.availability),
        }


def delivery_kpis(start: datetime, end: datetime, by: Sequence[str] = ()) -> list[Kpi]:
    """The KPIs of messages created, and attempts made, in ``[start, end)``, grouped ``by``
    any of :data:`GROUPS` (none: one row for everything the current scope sees).

    Rows come busiest first. Run in the system scope for the whole platform, in a tenant's
    scope for one clinic.
    """
    return kpi_tables(start, end, [tuple(by)])[tuple(by)]


def kpi_tables(
    start: datetime, end: datetime, groupings: Sequence[tuple[str, ...]]
) -> dict[tuple[str, ...], list[Kpi]]:
    """:func:`delivery_kpis` for several groupings at once: on PostgreSQL one pass over the
    window's messages and one over its attempts (``GROUPING SETS``), whatever their number."""
    groupings = list(dict.fromkeys(tuple(g) for g in groupings))
    for grouping in groupings:
        for name in grouping:
            if name not in GROUPS:
                raise ValueError(f"unknown grouping {name!r}; choose among {GROUPS}")
    if db.session.get_bind().dialect.name == "postgresql":
        tables = _tables(start, end, groupings)
    else:  # SQLite: one grouping at a time, percentiles from a sample
        tables = {}
        for grouping in groupings:
            tables.update(_tables(start, end, [grouping]))
            _sample_quantiles(tables[grouping], start, end, grouping)
    result = {}
    for grouping, rows in tables.items():
        if not grouping and not rows:
            rows[()] = Kpi(())
        result[grouping] = sorted(rows.values(), key=_busiest_first)
    return result


def _tables(start, end, groupings) -> dict[tuple[str, ...], dict[tuple, Kpi]]:
    names = [name for name in GROUPS if any(name in g for g in groupings)]
    masks = {_mask(names, g): g for g in groupings}  # GROUPING(...) of each grouping's rows
    tables: dict[tuple[str, ...], dict[tuple, Kpi]] = {g: {} for g in groupings}

    def rows_of(statement):
        for row in db.session.execute(statement):
            grouping = masks[row.grouping]
            figures = row._mapping
            values = {name: figures[f"k{i}"] for i, name in enumerate(names)}
            key = tuple(values[name] for name in grouping)
            yield tables[grouping].setdefault(key, Kpi(key)), figures

    for kpi, figures in rows_of(_message_figures(start, end, names, groupings)):
        for name in (*_MESSAGE_COUNTS, "timed", "within"):
            setattr(kpi, name, figures[name])
        kpi.mean_s = _float(figures["mean_s"])
        quantiles = figures.get("quantiles") or [None] * len(QUANTILES)
        kpi.quantiles_s = {q: _float(v) for q, v in zip(QUANTILES, quantiles, strict=True)}
    for kpi, figures in rows_of(_attempt_figures(start, end, names, groupings)):
        kpi.attempts, kpi.temporary_failures = figures["attempts"], figures["temporary"]
    return tables


_MESSAGE_COUNTS = ("messages", "sent", "delivered", "undelivered", "failed", "deferred", "denied")


def _mask(names: list[str], grouping: tuple[str, ...]) -> int:
    """What PostgreSQL's GROUPING(names...) gives for rows of ``grouping``: a bit per name,
    the first the most significant, set when that name is not grouped on."""
    return sum(1 << (len(names) - 1 - i) for i, name in enumerate(names) if name not in grouping)


@dataclass(frozen=True)
class Failure:
    """Messages or provider calls that went wrong for one reason, in a window."""

    kind: str  # refused (by a provider), unavailable, unreachable, undelivered, denied
    reason: str | None  # the provider's error (numbers masked), or the rule that refused
    provider: str | None
    count: int


FAILURE_KINDS = {PERMANENT: "refused", UNREACHABLE: "unreachable"}
_LONG_NUMBER = re.compile(r"\+?\d[\d .-]{5,}\d")  # a phone number in a provider's error


def failure_reasons(start: datetime, end: datetime, limit: int = 15) -> list[Failure]:
    """What went wrong in ``[start, end)``, most frequent first: provider calls refused,
    unavailable or unreachable (by error), messages a provider's receipt said undelivered (by
    provider) and messages the rules refused (by rule). Errors never show a phone number."""
    window = (Attempt.at >= start, Attempt.at < end, Attempt.outcome != ACCEPTED)
    calls = db.session.execute(
        sa.select(Attempt.outcome, Attempt.error, Attempt.provider, sa.func.count())
        .where(*window, Attempt.outcome != IN_FLIGHT)
        .group_by(Attempt.outcome, Attempt.error, Attempt.provider)
    )
    created = (Message.created_at >= start, Message.created_at < end)
    undelivered = db.session.execute(
        sa.select(Message.provider, sa.func.count())
        .where(*created, Message.status == MessageStatus.UNDELIVERED)
        .group_by(Message.provider)
    )
    denied = db.session.execute(
        sa.select(Message.verdict_rule, Message.verdict_plugin, sa.func.count())
        .where(*created, Message.verdict == "deny")
        .group_by(Message.verdict_rule, Message.verdict_plugin)
    )
    merged: dict[tuple, int] = {}
    for outcome, error, provider, count in calls:
        kind = FAILURE_KINDS.get(outcome, "unavailable")
        reason = _LONG_NUMBER.sub("…", error) if error else None
        key = (kind, reason, provider)
        merged[key] = merged.get(key, 0) + count
    for provider, count in undelivered:
        merged[("undelivered", None, provider)] = count
    for rule, plugin, count in denied:
        merged[("denied", rule, plugin)] = count
    failures = [Failure(*key, count) for key, count in merged.items()]
    return sorted(failures, key=lambda f: (-f.count, f.kind, f.reason or ""))[:limit]


def clinic_names(slugs) -> dict[str, str]:
    """The names of the clinics whose slugs a ``clinic`` grouping gave."""
    wanted = [s for s in slugs if s]
    if not wanted:
        return {}
    return dict(
        db.session.execute(sa.select(Tenant.slug, Tenant.name).where(Tenant.slug.in_(wanted))).all()
    )


# --- windows ----------------------------------------------------------------------------------


def parse_window(args: Mapping[str, str], now: datetime | None = None) -> tuple[datetime, datetime]:
    """The window ``from``/``to`` of a request (ISO 8601 with offset); the last hour when
    both are missing. :raises ValidationError: naming ``from`` or ``to``."""
    now = now or utcnow()
    end = parse_time(_plus_restored(args.get("to")), "to") or now
    start = parse_time(_plus_restored(args.get("from")), "from") or end - WINDOWS["hour"]
    return check_window(start, end)


def preset_window(name: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last hour, day or week up to ``now``. :raises ValidationError: naming ``window``."""
    if name not in WINDOWS:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(WINDOWS)), "window")
    now = now or utcnow()
    return now - WINDOWS[name], now


def parse_local_window(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """A window typed in a form (``2026-03-01T09:00``), read in UTC when it has no offset."""
    return check_window(_form_time(start, "from"), _form_time(end, "to"))


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if start >= end:
        raise ValidationError(_("The end must come after the start."), "to")
    if end - start > MAX_WINDOW:
        raise ValidationError(
            _("Choose a window of at most %(days)d days.", days=MAX_WINDOW.days), "from"
        )
    return start, end


def grouping(value: str | None) -> str:
    """A grouping named in a request. :raises ValidationError: naming ``group``."""
    if value not in GROUPS:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(GROUPS)), "group")
    return value


def _form_time(value: str | None, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat((value or "").strip())
    except ValueError:
        raise ValidationError(_("Give a date and time."), field) from None
    return check.plausible(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), field)


def _plus_restored(value: str | None) -> str | None:
    """``2026-03-01T09:00:00 01:00``: a ``+`` a query string turned into a space."""
    if value and re.fullmatch(r".+T[\d:.]+ \d\d:?\d\d", value):
        return value[: value.rindex(" ")] + "+" + value[value.rindex(" ") + 1 :]
    return value


# --- queries ----------------------------------------------------------------------------------


def _message_key(name: str) -> sa.ColumnElement:
    return {
        "country": Tenant.country_code,
        "clinic": Tenant.slug,
        "channel": current_channel(),
        "provider": Message.provider,
    }[name]


def _attempt_key(name: str) -> sa.ColumnElement:
    return {
        "country": Tenant.country_code,
        "clinic": Tenant.slug,
        "channel": Attempt.channel,
        "provider": Attempt.provider,
    }[name]


def _delivered() -> sa.ColumnElement[bool]:
    return sa.and_(Message.status == MessageStatus.DELIVERED, Message.delivered_at.is_not(None))


def _reception() -> sa.ColumnElement[float]:
    """Seconds from due to delivered, for delivered messages; NULL for the others."""
    return sa.case((_delivered(), seconds_between(due_at(), Message.delivered_at)))


def _count_if(condition) -> sa.ColumnElement[int]:
    return sa.func.count(sa.case((condition, 1)))


def _grouped(statement: sa.Select, keys: dict[str, sa.ColumnElement], groupings) -> sa.Select:
    """Select the keys, and group by each grouping: GROUPING SETS when there are several,
    with GROUPING() telling rows apart (0 when there is a single one)."""
    names = list(keys)
    statement = statement.add_columns(*(keys[n].label(f"k{i}") for i, n in enumerate(names)))
    if len(groupings) == 1:
        statement = statement.add_columns(sa.literal(0).label("grouping"))
        return statement.group_by(*(keys[n] for n in groupings[0]))
    sets = [sa.tuple_(*(keys[n] for n in grouping)) for grouping in groupings]
    return statement.add_columns(sa.func.grouping(*keys.values()).label("grouping")).group_by(
        sa.func.grouping_sets(*sets)
    )


def _message_figures(start: datetime, end: datetime, names, groupings) -> sa.Select:
    # Each message's keys and time to reception computed once, in a subquery PostgreSQL
    # keeps as such (OFFSET 0), not once per aggregate and grouping set.
    rows = (
        sa.select(
            *(_message_key(n).label(n) for n in names),
            Message.sent_at.is_not(None).label("was_sent"),
            Message.status,
            Message.verdict,
            _reception().label("reception"),
        )
        .select_from(Message)
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(Message.created_at >= start, Message.created_at < end)
        .offset(0)
        .subquery("window_messages")
    )
    reception = rows.c.reception
    figures = [
        sa.func.count().label("messages"),
        _count_if(rows.c.was_sent).label("sent"),
        _count_if(rows.c.status == MessageStatus.DELIVERED).label("delivered"),
        _count_if(rows.c.status == MessageStatus.UNDELIVERED).label("undelivered"),
        _count_if(rows.c.status == MessageStatus.FAILED).label("failed"),
        _count_if(rows.c.verdict == "defer").label("deferred"),
        _count_if(rows.c.verdict == "deny").label("denied"),
        sa.func.count(reception).label("timed"),
        sa.func.avg(reception).label("mean_s"),
        _count_if(reception <= WITHIN).label("within"),
    ]
    if db.session.get_bind().dialect.name == "postgresql":
        quantiles = postgresql.array([sa.literal(q, sa.Float) for q in QUANTILES])
        figures.append(
            sa.func.percentile_cont(quantiles).within_group(reception).label("quantiles")
        )
    return _grouped(sa.select(*figures).select_from(rows), {n: rows.c[n] for n in names}, groupings)


def _attempt_figures(start: datetime, end: datetime, names, groupings) -> sa.Select:
    statement = (
        sa.select(
            _count_if(Attempt.outcome != IN_FLIGHT).label("attempts"),
            _count_if(Attempt.outcome.in_(UNANSWERED)).label("temporary"),
        )
        .select_from(Attempt)
        .join(Tenant, Tenant.id == Attempt.tenant_id)
        .where(Attempt.at >= start, Attempt.at < end)
    )
    return _grouped(statement, {n: _attempt_key(n) for n in names}, groupings)


def _sample_quantiles(rows: dict[tuple, Kpi], start: datetime, end: datetime, by) -> None:
    """SQLite has no percentile_cont: interpolate as it does, over the latest SAMPLE
    delivered messages of the window."""
    keys = [_message_key(name) for name in by]
    reception = _reception()
    sample = db.session.execute(
        sa.select(*keys, reception)
        .select_from(Message)
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(Message.created_at >= start, Message.created_at < end, _delivered())
        .order_by(Message.created_at.desc())
        .limit(SAMPLE)
    ).all()
    times: dict[tuple, list[float]] = {}
    for row in sample:
        times.setdefault(tuple(row[:-1]), []).append(float(row[-1]))
    for key, values in times.items():
        values.sort()
        rows.setdefault(key, Kpi(key)).quantiles_s = {
            q: percentile_cont(values, q) for q in QUANTILES
        }


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont`` over already sorted values (linear interpolation)."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _busiest_first(kpi: Kpi):
    return (-kpi.messages, -kpi.attempts, [k or "" for k in kpi.key])


def _float(value) -> float | None:
    return float(value) if value is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None
