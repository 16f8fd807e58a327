"""Provider health: traffic moves away from a provider that turns slow or fails, and drifts
back as it recovers (as GOV.UK Notify moves SMS between its providers).

Once a minute (a pass of the sweeper), for each provider, the messages it took in the last
15 minutes, and its calls that failed meanwhile (5xx, timeouts), are measured: the share of
them that failed, or were delivered more than 5 minutes after they were sent, or are still
waiting for their receipt 5 minutes after. At 15 % or more
(over at least 20 messages), the provider keeps :data:`FLOOR` of its configured weight:
enough to see it recover. Under half the threshold, it gets back :data:`STEP` of its weight a
minute until it carries all of it. Each change is an event operators read on the console's
*Delivery* page, with the share that caused it. Those figures are the defaults of the
``HEALTH_*`` settings (:class:`core.config.Config`, read by :func:`rules`).

A provider that may not report delivery (the development outbox) is judged on failures
only. Measures need PostgreSQL: the embedded demo (SQLite, one process) does not rebalance.
Routing multiplies each route's weight by its provider's factor (:func:`factors`, read once
per ``HEALTH_REMEMBER_SECONDS`` per process): priority still comes first, so a provider
alone in its tier keeps its traffic (there is nothing to move it to).
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql

from core.db import db, new_id, utcnow
from core.delivery.models import (
    Attempt,
    Message,
    MessageStatus,
    ProviderHealth,
    ProviderHealthEvent,
)
from core.delivery.providers import declared_providers

FLOOR = 0.1
STEP = 0.3
MARK = "*"  # the row that remembers when the last measure ran


@dataclass(frozen=True)
class Rules:
    """When a provider is judged slow or failing, and how often (the ``HEALTH_*`` settings)."""

    window: timedelta  # the messages measured: those sent this long ago at most
    slow: timedelta  # a receipt later than this after the send is slow
    threshold: float  # this share of slow or failed messages, or more, moves traffic
    min_sample: int  # ...over at least this many messages
    every: timedelta  # one measure this often in the deployment
    remember: float  # seconds a process keeps the factors it read


def rules() -> Rules:
    """The rules of this deployment, from the app's configuration."""
    config = current_app.config
    return Rules(
        window=timedelta(seconds=config["HEALTH_WINDOW_SECONDS"]),
        slow=timedelta(seconds=config["HEALTH_SLOW_SECONDS"]),
        threshold=float(config["HEALTH_THRESHOLD"]),
        min_sample=int(config["HEALTH_MIN_SAMPLE"]),
        every=timedelta(seconds=config["HEALTH_EVERY_SECONDS"]),
        remember=float(config["HEALTH_REMEMBER_SECONDS"]),
    )


_remembered: tuple[float, dict[str, float]] = (0.0, {})


def factors() -> dict[str, float]:
    """Each provider's share of its configured weight (1 when never measured), as read at
    most ``HEALTH_REMEMBER_SECONDS`` ago by this process."""
    global _remembered
    read_at, known = _remembered
    if time.monotonic() - read_at > current_app.config["HEALTH_REMEMBER_SECONDS"]:
        rows = db.session.execute(
            sa.select(ProviderHealth.provider, ProviderHealth.factor).where(
                ProviderHealth.provider != MARK
            )
        )
        known = {provider: factor for provider, factor in rows}
        _remembered = (time.monotonic(), known)
    return known


def forget() -> None:
    """Read the factors again at the next :func:`factors` (after a change of this process)."""
    global _remembered
    _remembered = (0.0, {})


def rebalance_if_due(now: datetime | None = None) -> int:
    """Measure and move traffic if the last measure is ``HEALTH_EVERY_SECONDS`` old; returns
    how many providers changed. Safe beside another sweeper: one conditional upsert of the
    ``*`` row decides which of them measures."""
    if db.engine.dialect.name != "postgresql":
        return 0
    now = now or utcnow()
    claim = _upsert(
        {"provider": MARK, "factor": 1.0, "share": None, "sample": 0, "measured_at": now},
        set_={"measured_at": now},
        where=ProviderHealth.measured_at <= now - rules().every,
    ).returning(ProviderHealth.provider)
    if db.session.execute(claim).first() is None:
        db.session.commit()
        return 0
    changed = rebalance(now)
    db.session.commit()
    return changed


def measure(now: datetime) -> dict[str, tuple[int, int]]:
    """Per provider: (messages it took in the window and calls it did not answer as it should,
    those of them slow or failed).

    A call that failed for the provider's sake (a 5xx, throttling, a timeout: the
    dispatcher's ``UNANSWERED``) counts even when the message then went by a retry or another
    provider; a refusal of the message itself (an invalid number) does not.
    """
    from core.delivery.dispatch import UNANSWERED  # dispatch imports routing, which imports us

    judged = rules()
    reports = {name for name, p in declared_providers().items() if not _silent(p.provider)}
    late = sa.or_(
        Message.status.in_([MessageStatus.FAILED, MessageStatus.UNDELIVERED]),
        sa.and_(
            Message.provider.in_(reports),
            sa.or_(
                Message.delivered_at - Message.sent_at > judged.slow,
                sa.and_(Message.status == MessageStatus.SENT, Message.sent_at < now - judged.slow),
            ),
        ),
    )
    rows = db.session.execute(
        sa.select(
            Message.provider,
            sa.func.count(),
            sa.func.count().filter(late),
        )
        .where(
            Message.status.in_(
                [
                    MessageStatus.SENT,
                    MessageStatus.DELIVERED,
                    MessageStatus.UNDELIVERED,
                    MessageStatus.FAILED,
                ]
            ),
            Message.provider.is_not(None),
            Message.sent_at >= now - judged.window,
        )
        .group_by(Message.provider)
    )
    found = {provider: (total, bad) for provider, total, bad in rows}
    unanswered = db.session.execute(
        sa.select(Attempt.provider, sa.func.count())
        .where(Attempt.at >= now - judged.window, Attempt.outcome.in_(UNANSWERED))
        .group_by(Attempt.provider)
    )
    for provider, calls in unanswered:
        total, bad = found.get(provider, (0, 0))
        found[provider] = (total + calls, bad + calls)
    return found


def rebalance(now: datetime) -> int:
    """One measure: each provider's new factor, its events; returns how many changed."""
    seen = measure(now)
    judged = rules()
    current = {
        row.provider: row
        for row in db.session.scalars(
            sa.select(ProviderHealth).where(ProviderHealth.provider != MARK).with_for_update()
        )
    }
    events = []
    for provider in sorted(set(seen) | set(current)):
        total, bad = seen.get(provider, (0, 0))
        share = bad / total if total else 0.0
        before = current[provider].factor if provider in current else 1.0
        if total >= judged.min_sample and share >= judged.threshold:
            after = FLOOR
        elif share < judged.threshold / 2 or total < judged.min_sample:
            after = min(1.0, round(before + STEP, 2))
        else:
            after = before  # between the two: stay where it is
        row = {"provider": provider, "factor": after, "share": share, "sample": total}
        db.session.execute(_upsert({**row, "measured_at": now}, set_={**row, "measured_at": now}))
        if after != before:
            events.append(
                {
                    "id": new_id(),
                    "at": now,
                    "provider": provider,
                    "factor_from": before,
                    "factor_to": after,
                    "share": share,
                    "sample": total,
                }
            )
    if events:
        db.session.execute(sa.insert(ProviderHealthEvent), events)
    forget()
    return len(events)


def recent_events(limit: int = 50) -> list[ProviderHealthEvent]:
    """The latest shifts, newest first."""
    return list(
        db.session.scalars(
            sa.select(ProviderHealthEvent)
            .order_by(ProviderHealthEvent.at.desc(), ProviderHealthEvent.id.desc())
            .limit(limit)
        )
    )


def current() -> list[ProviderHealth]:
    """Every measured provider, by name."""
    return list(
        db.session.scalars(
            sa.select(ProviderHealth)
            .where(ProviderHealth.provider != MARK)
            .order_by(ProviderHealth.provider)
        )
    )


def _silent(provider_class) -> bool:
    """A provider that may not report delivery: its messages may stay ``sent``. (A class
    deciding it per country by a setting says so with a property.)"""
    said = provider_class.delivered_on_accept
    return isinstance(said, property) or said is True


def _upsert(values: dict, set_: dict, where=None):
    return (
        postgresql.insert(ProviderHealth)
        .values(values)
        .on_conflict_do_update(index_elements=[ProviderHealth.provider], set_=set_, where=where)
    )
