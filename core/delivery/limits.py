"""Per-clinic sending limits: messages a minute, and a day per channel.

The operator sets them per country (``relais limits set --country FR``, or the console's
*Limits* page), and may give one clinic its own (``--clinic``); unset, there is no limit.
Every purpose has a budget of its own of that size (``otp``, ``reminder``, ``campaign``...):
a campaign that used its quota never holds back a login code or a reminder.

A minute's budget is a token bucket (it refills continuously, ``per_minute`` tokens a
minute, up to ``per_minute``); a day's is a counter per channel (the first of a message's
plan) that starts again at midnight UTC. Both are checked and taken in one step for a whole
request: all of its messages or none, in one Lua script on Redis, so that any number of web
nodes share them. Without Redis (the embedded first run) they live in the process: each
process counts for itself (docs/operating.md, *Sending limits per clinic*).
"""

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.clinic import audit, settings
from core.clinic.models import ClinicSettings
from core.clinic.settings import Setting
from core.db import db, utcnow
from core.delivery import jobs
from core.delivery.models import Message, MessageStatus
from core.errors import DomainError, ValidationError
from core.i18n import format_number
from core.vocabulary import CHANNELS, PURPOSES
from tenants.models import Tenant
from tenants.scoping import tenant_scope

NAME = "limits"  # where the values are stored, as a plugin's settings are


MAXIMUM = 10_000_000  # messages: far above any clinic's, well inside what Redis counts


def _count(text: str) -> int:
    try:
        value = int(text) if len(text) <= 20 else None
    except ValueError:
        value = None
    if value is None or value < 0:
        raise ValueError(_("A whole number from 0 (no limit)."))
    if value > MAXIMUM:
        raise ValueError(_("At most %(n)s.", n=format_number(MAXIMUM)))
    return value


SETTINGS = [
    Setting(
        "per_minute",
        _l("Messages a minute, for each purpose"),
        default=0,
        parse=_count,
        help=_l("0: no limit."),
    ),
    *(
        Setting(
            f"per_day_{channel}",
            _l("Messages a day by %(channel)s, for each purpose", channel=channel),
            default=0,
            parse=_count,
            help=_l("0: no limit."),
        )
        for channel in CHANNELS
    ),
]


class OverLimit(DomainError):
    """Too many messages for now: come back after ``retry_after`` seconds."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def as_json(self) -> dict:
        answer = super().as_json()
        answer["error"]["retry_after"] = self.retry_after
        return answer


# --- the values -------------------------------------------------------------------------------


def country_limits(country_code: str) -> dict[str, int]:
    """A country's limits: its own, else the deployment's, else none (0)."""
    stored = settings.stored(country_code, NAME)
    return {s.name: stored.get(s.name, s.default) for s in SETTINGS}


def limits_for(tenant) -> dict[str, int]:
    """The clinic's limits: its own, else its country's (:func:`country_limits`)."""
    own = settings.clinic_values(tenant, NAME)
    return {
        name: own.get(name, value) for name, value in country_limits(tenant.country_code).items()
    }


def set_limits(
    form: dict[str, str], country_code: str | None = None, tenant=None, by: str = "operator"
) -> dict:
    """Store limits for a country (or, with ``tenant``, that clinic's own); an empty value
    goes back to the level above; the change is audited (a clinic's in its audit log, by
    ``by``; a country's in the ``relais.operators`` log).

    :raises ValidationError: naming the value not understood; nothing is stored.
    """
    known = {s.name for s in SETTINGS}
    unknown = set(form) - known
    if unknown:
        raise ValidationError(_("Unknown field: %(field)s.", field=min(unknown)), min(unknown))
    if tenant is not None:
        before = settings.clinic_values(tenant, NAME)
    else:
        before = settings.stored(country_code, NAME)
    # The values not given stay as they were.
    form = {**{k: str(v) for k, v in before.items() if k in known}, **form}
    if tenant is not None:
        with tenant_scope(tenant.id):
            saved = settings.save_clinic(tenant, NAME, form, declared=SETTINGS)
            audit.record("limits.set", tenant.id, _described(saved), by=by)
        return saved
    saved = settings.save(country_code, NAME, form, declared=SETTINGS)
    logging.getLogger("relais.operators").info(
        "%s set the sending limits of %s: %s", by, country_code, _described(saved)
    )
    return saved


def remove_override(tenant, by: str = "operator") -> None:
    """The clinic goes back to its country's limits (audited as :func:`set_limits`)."""
    set_limits({s.name: "" for s in SETTINGS}, tenant=tenant, by=by)


def _described(values: dict) -> str:
    """Limits in a few words for the audit log: ``per_minute=600, per_day_sms=20000``."""
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "none of its own"


@dataclass(frozen=True)
class Override:
    """A clinic's own limits, as the operator's page lists them."""

    tenant: Any
    own: dict[str, int]
    used_today: int  # messages counted today, every budget together


def overrides(country_code: str) -> list[Override]:
    """The clinics of a country with limits of their own, by name (in the system scope)."""
    found = db.session.scalars(
        sa.select(Tenant)
        .join(ClinicSettings, ClinicSettings.tenant_id == Tenant.id)
        .where(ClinicSettings.plugin == NAME, Tenant.country_code == country_code)
        .order_by(Tenant.name)
    )
    listed = []
    for tenant in found:
        own = settings.clinic_values(tenant, NAME)
        if own:
            listed.append(Override(tenant, own, sum(u.used for u in usage(tenant))))
    return listed


# --- taking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bucket:
    key: str
    capacity: int  # tokens, refilled at capacity a minute
    n: int


@dataclass(frozen=True)
class _Counter:
    key: str
    limit: int
    n: int
    reset: float  # seconds until it starts again


def take(tenant, messages: list[Message]) -> None:
    """Count ``messages`` (those written by a request, refused ones aside) against the
    clinic's budgets, all or none.

    :raises OverLimit: when one budget has not enough left; nothing is counted then.
    :raises ValidationError: on ``messages`` when more are sent at once than a minute allows.
    """
    wanted = Counter(
        (m.purpose, m.channels[0])
        for m in messages
        if m.status != MessageStatus.DENIED and m.channels
    )
    limits = limits_for(tenant)
    if not wanted or not any(limits.values()):
        return
    now = utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    day = now.date().isoformat()
    base = f"relais:limits:{tenant.id}"
    by_purpose = Counter()
    counters = []
    for (purpose, channel), n in wanted.items():
        by_purpose[purpose] += n
        if limit := limits[f"per_day_{channel}"]:
            key = f"{base}:{purpose}:{channel}:{day}"
            counters.append(_Counter(key, limit, n, (midnight - now).total_seconds()))
    buckets = []
    if per_minute := limits["per_minute"]:
        for purpose, n in by_purpose.items():
            if n > per_minute:
                raise ValidationError(
                    _("At most %(n)d messages a minute for each purpose.", n=per_minute),
                    "messages",
                )
            buckets.append(_Bucket(f"{base}:{purpose}:minute", per_minute, n))
    wait = _store().take(buckets, counters, now.timestamp())
    if wait > 0:
        raise OverLimit(
            _("This clinic sent as many messages as it may for now: try again later."),
            retry_after=max(1, math.ceil(wait)),
        )


@dataclass(frozen=True)
class Use:
    """A budget's use today, as the usage page shows it."""

    channel: str
    purpose: str
    used: int
    limit: int  # 0: none


def usage(tenant) -> list[Use]:
    """Today's use of each budget a message was counted against (by channel, then purpose)."""
    limits = limits_for(tenant)
    day = utcnow().date().isoformat()
    pairs = [(c, p) for c in CHANNELS for p in PURPOSES]
    keys = [f"relais:limits:{tenant.id}:{p}:{c}:{day}" for c, p in pairs]
    used = _store().read(keys)
    return [
        Use(c, p, n, limits[f"per_day_{c}"]) for (c, p), n in zip(pairs, used, strict=True) if n
    ]


# --- where the budgets live -------------------------------------------------------------------

# KEYS: the buckets, then the counters. ARGV: now (seconds), the number of buckets, then
# (capacity, n) per bucket and (limit, n, seconds until reset) per counter. Answers how long
# to wait ("0": taken). Floats go back as strings: Redis would cut them to integers.
TAKE = """
local now, nb = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait, have = 0, {}
for i = 1, nb do
  local capacity, n = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens, at = tonumber(state[1]) or capacity, tonumber(state[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - at) * capacity / 60)
  have[i] = tokens
  if tokens < n then wait = math.max(wait, (n - tokens) * 60 / capacity) end
end
local a = 3 + 2 * nb
for i = nb + 1, #KEYS do
  local limit, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  if tonumber(redis.call('GET', KEYS[i]) or '0') + n > limit then
    wait = math.max(wait, tonumber(ARGV[a + 2]))
  end
  a = a + 3
end
if wait > 0 then return tostring(wait) end
for i = 1, nb do
  local left = have[i] - tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'at', ARGV[1])
  redis.call('EXPIRE', KEYS[i], 120)
end
a = 3 + 2 * nb
for i = nb + 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[a + 1])
  redis.call('EXPIRE', KEYS[i], 172800)
  a = a + 3
end
return '0'
"""


class RedisBudgets:
    """The budgets in Redis, shared by every process: taken by :data:`TAKE`, atomically."""

    def __init__(self, connection) -> None:
        self.script = connection.register_script(TAKE)
        self.connection = connection

    def take(self, buckets: list[_Bucket], counters: list[_Counter], now: float) -> float:
        args: list[Any] = [repr(now), len(buckets)]
        for b in buckets:
            args += [b.capacity, b.n]
        for c in counters:
            args += [c.limit, c.n, repr(c.reset)]
        keys = [b.key for b in buckets] + [c.key for c in counters]
        return float(self.script(keys=keys, args=args))

    def read(self, keys: list[str]) -> list[int]:
        return [int(v or 0) for v in self.connection.mget(keys)]


class ProcessBudgets:
    """The same budgets in this process's memory, for a deployment without Redis: each
    process counts for itself (one process in the embedded first run)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.counters: dict[str, int] = {}

    def take(self, buckets: list[_Bucket], counters: list[_Counter], now: float) -> float:
        with self.lock:
            wait, have = 0.0, []
            for b in buckets:
                tokens, at = self.buckets.get(b.key, (b.capacity, now))
                tokens = min(b.capacity, tokens + max(0.0, now - at) * b.capacity / 60)
                have.append(tokens)
                if tokens < b.n:
                    wait = max(wait, (b.n - tokens) * 60 / b.capacity)
            for c in counters:
                if self.counters.get(c.key, 0) + c.n > c.limit:
                    wait = max(wait, c.reset)
            if wait > 0:
                return wait
            for b, tokens in zip(buckets, have, strict=True):
                self.buckets[b.key] = (tokens - b.n, now)
            for c in counters:
                self.counters[c.key] = self.counters.get(c.key, 0) + c.n
            return 0.0

    def read(self, keys: list[str]) -> list[int]:
        with self.lock:
            return [self.counters.get(k, 0) for k in keys]


def _store():
    state = current_app.extensions["relais"]
    if state.budgets is None:
        redis_url = current_app.config["REDIS_URL"]
        state.budgets = RedisBudgets(jobs.redis()) if redis_url else ProcessBudgets()
    return state.budgets


__all__ = [
    "SETTINGS",
    "OverLimit",
    "Override",
    "country_limits",
    "limits_for",
    "overrides",
    "remove_override",
    "set_limits",
    "take",
    "usage",
]
