"""The sweeper: the database is the source of truth, Redis only a hint.

Each pass, in bounded batches, across clinics:
- scheduled messages whose time has come become due;
- messages whose worker died (lease over) become due again;
- due messages not pushed to Redis (Redis lost, restarted, or a retry's time has come) are
  pushed again; a message pushed twice is claimed once; a suspended clinic's are not (they
  wait until the operator reactivates it);
- messages past their expiry end as expired;
- messages sent by a provider that waits for the device's acknowledgement (push), not
  acknowledged within its plugin's ``ack_timeout``, go by the next channel of their plan, or
  end undelivered when none is left;
- delivery reports kept because they came before their send was recorded (early receipts)
  are applied once it is, if the worker that recorded it did not (it died first), and
  deleted;
- self-signed-up clinics whose first admin let the invitation expire unused (no staff, no
  patient) are removed, so their subdomains can be taken again
  (:func:`core.delivery.onboarding.release_expired_signups`);
- once a minute, providers that turned slow or fail lose traffic to the others, and those
  that recovered get it back (:mod:`core.delivery.health`);
- with PostgreSQL's autovacuum off, tables that changed enough are analyzed: once a minute
  by autovacuum's rule, at once when they doubled (:mod:`core.statistics`).

Beside a worker it also starts the retention purge (:mod:`core.delivery.retention`) at most
once a day in the whole deployment, in a thread of its own so that sweeping goes on meanwhile.
"""

import threading
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import auth, sessions, statistics
from core.clinic import settings
from core.db import db, utcnow
from core.delivery import health, jobs, lifecycle, onboarding, queues, receipts, retention
from core.delivery.dispatch import deliver
from core.delivery.models import Message, MessageStatus
from core.delivery.providers import declared_providers
from core.plugins import host
from tenants.models import Tenant
from tenants.scoping import system_scope, tenant_scope

REPUSH_AFTER = timedelta(seconds=120)  # a due message not claimed by then was lost by Redis
BATCH = 5000
PURGE_EVERY = timedelta(days=1)
PURGE_KEY = "relais:retention"  # set (with a day's expiry) by the worker that purges


def sweep() -> dict[str, int]:
    """One pass; returns how many messages each step moved."""
    now = utcnow()
    counts = {}
    with system_scope():
        counts["due"] = _move(
            MessageStatus.SCHEDULED, Message.next_attempt_at <= now, MessageStatus.PENDING, "due"
        )
        counts["reclaimed"] = _move(
            MessageStatus.SENDING,
            Message.lease_until < now,
            MessageStatus.PENDING,
            "the worker's lease ended: sending again",
        )
        counts["expired"] = _expire(now)
        counts["unacknowledged"] = _unacknowledged(now)
        counts["receipts"] = _leftover_receipts()
        counts["pushed"] = _push_due(now)
        counts["released"] = _release_expired_signups(now)
        counts["rebalanced"] = health.rebalance_if_due(now)  # once a minute
        counts["analyzed"] = len(statistics.refresh_if_due(now))
        _plugins_sweep(now)
    return counts


def _plugins_sweep(now) -> None:
    """The plugins' periodic work (``relais_sweep``); a failure there stops no core step."""
    try:
        host().pm.hook.relais_sweep(now=now)
    except Exception:  # noqa: BLE001 - logged; the next pass calls the plugins again
        current_app.logger.exception("relais_sweep failed")
        db.session.rollback()


def _move(frm: MessageStatus, where, to: MessageStatus, why: str) -> int:
    moved = lifecycle.move_many([where], [frm], to, why, BATCH)
    db.session.commit()  # the lifecycle announces the changes once this commits
    return moved


def _expire(now) -> int:
    expired = lifecycle.move_many(
        [Message.expires_at < now],
        [MessageStatus.SCHEDULED, MessageStatus.PENDING],
        MessageStatus.EXPIRED,
        "expired before it could be sent",
        BATCH,
        now,
    )
    db.session.commit()
    return expired


def _unacknowledged(now) -> int:
    """Sent messages no device acknowledged in time: by the next channel, else undelivered."""
    waits = {}  # provider -> (default minutes, {country: minutes})
    for name, declared in declared_providers().items():
        if declared.provider.acknowledged:
            default, own = settings.by_country(declared.plugin, "ack_timeout")
            waits[name] = (int(default or 5), {c: int(m) for c, m in own.items()})
    if not waits:
        return 0
    late = []
    for name, (default, own) in waits.items():
        per_country = [
            sa.and_(Tenant.country_code == code, Message.sent_at < now - timedelta(minutes=m))
            for code, m in own.items()
        ]
        elsewhere = sa.and_(
            Tenant.country_code.not_in(list(own)),
            Message.sent_at < now - timedelta(minutes=default),
        )
        late.append(sa.and_(Message.provider == name, sa.or_(elsewhere, *per_country)))
    rows = db.session.execute(
        sa.select(Message, Tenant.country_code)
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(Message.status == MessageStatus.SENT, sa.or_(*late))
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=Message)
    ).all()
    for message, country in rows:
        default, own = waits[message.provider]
        why = (
            f"{message.provider}: no device acknowledged it within "
            f"{own.get(country, default)} minutes"
        )
        if not lifecycle.fall_back(message, why):
            last = message.channel_index + 1 >= len(message.channels or ())
            lifecycle.finish(
                message,
                MessageStatus.UNDELIVERED,
                f"{why}; {'no channel left in the plan' if last else 'the message expired'}",
                now,
            )
    db.session.commit()
    return len(rows)


def _leftover_receipts() -> int:
    applied = receipts.apply_leftovers(BATCH)
    db.session.commit()  # the lifecycle announces the changes once this commits
    return applied


def _release_expired_signups(now) -> int:
    released = onboarding.release_expired_signups(now)
    db.session.commit()
    return len(released)


def _push_due(now) -> int:
    rows = db.session.execute(
        sa.select(Message.tenant_id, Message.purpose, Message.id)
        .where(
            Message.status == MessageStatus.PENDING,
            Message.next_attempt_at <= now,
            sa.or_(Message.enqueued_at.is_(None), Message.enqueued_at < now - REPUSH_AFTER),
            _not_suspended(),
        )
        .order_by(Message.next_attempt_at)
        .limit(BATCH)
    ).all()
    if not rows:
        return 0
    db.session.execute(
        sa.update(Message)
        .where(Message.id.in_([r.id for r in rows]))
        .values(enqueued_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()  # first the database, then Redis: a lost push is found again
    queues.push([(t, queues.QUEUE_OF_PURPOSE[p], i) for t, p, i in rows])
    return len(rows)


def _not_suspended():
    """Messages of clinics not suspended: a suspended clinic's wait, due, until it is
    reactivated (:func:`core.delivery.onboarding.reactivate` has them pushed at once)."""
    return Message.tenant_id.not_in(sa.select(Tenant.id).where(Tenant.suspended_at.is_not(None)))


def deliver_due_in_process(limit: int = 500) -> int:
    """Without Redis (first run): send due messages from this process, clinic by clinic."""
    with system_scope():
        due = db.session.execute(
            sa.select(Message.tenant_id, Message.id)
            .where(
                Message.status == MessageStatus.PENDING,
                Message.next_attempt_at <= utcnow(),
                _not_suspended(),
            )
            .limit(limit)
        ).all()
        db.session.rollback()
    by_tenant: dict = {}
    for tenant_id, message_id in due:
        by_tenant.setdefault(tenant_id, []).append(str(message_id))
    sent = 0
    for tenant_id, ids in by_tenant.items():
        with tenant_scope(tenant_id):
            sent += deliver(ids)
    return sent


class Sweeper(threading.Thread):
    """Runs :func:`sweep` every ``interval`` seconds beside a worker or the demo server.

    With Redis, only one sweeper in the deployment works per interval (a Redis lock); without,
    it also delivers due messages itself. With ``purge`` (the worker's), it starts the
    retention purge once a day: see :meth:`purge_is_due`.
    """

    def __init__(self, app: Flask, interval: float = 1.0, purge: bool = False) -> None:
        super().__init__(name="relais-sweeper", daemon=True)
        self.app, self.interval, self.purge = app, interval, purge
        self.stopped = threading.Event()
        self.purging: threading.Thread | None = None
        self.next_purge_at = utcnow()  # without Redis: this process's own clock

    def run(self) -> None:
        redis_down = False
        while not self.stopped.wait(self.interval):
            try:
                self.tick()
            except (RedisConnectionError, RedisTimeoutError):
                # Said once per outage, not every second: the worker logs its own waits.
                if not redis_down:
                    self.app.logger.warning("sweeper: Redis does not answer; waiting for it")
                redis_down = True
                continue
            except Exception:  # noqa: BLE001 - keep sweeping; the next pass retries
                self.app.logger.exception("sweep failed")
            if redis_down:
                self.app.logger.warning("sweeper: Redis answers again")
                redis_down = False

    def tick(self) -> None:
        """One pass, in its own application context."""
        with self.app.app_context():
            try:
                if not self.app.config["REDIS_URL"]:
                    sweep()
                    deliver_due_in_process()
                elif jobs.redis().set("relais:sweeper", "1", nx=True, px=int(self.interval * 900)):
                    sweep()  # one sweeper per interval in the whole deployment
                if self.purge and self.purge_is_due():
                    self.purging = threading.Thread(
                        target=self._purge, name="relais-retention", daemon=True
                    )
                    self.purging.start()
            finally:
                db.session.remove()

    def purge_is_due(self) -> bool:
        """True at most once a day in the whole deployment: for the worker whose ``SET NX``
        of :data:`PURGE_KEY` (expiring after :data:`PURGE_EVERY`) succeeds.

        The key only saves work, it guards no correctness: the purge is safe to run twice
        and beside another one (it locks the rows it takes, skipping those locked). So a
        Redis that lost its keys costs at worst one more pass, and a purge that died halfway
        (its batches committed) is finished the next day. Without Redis (one process), the
        process's own clock says when.
        """
        if self.purging is not None and self.purging.is_alive():
            return False  # a day-long purge: not two at once in this process
        if not self.app.config["REDIS_URL"]:
            if utcnow() < self.next_purge_at:
                return False
            self.next_purge_at = utcnow() + PURGE_EVERY
            return True
        started = utcnow().isoformat()
        return bool(jobs.redis().set(PURGE_KEY, started, nx=True, ex=PURGE_EVERY))

    def _purge(self) -> None:
        with self.app.app_context():
            try:
                retention.purge()
                # Rows of ended sessions and of failed tries no longer counted: nothing in them
                # opens anything, but they are no use kept.
                sessions.purge()
                auth.purge_throttles()
                db.session.commit()
            except Exception:  # noqa: BLE001 - the next day's pass finishes the work
                self.app.logger.exception("retention purge failed")
            finally:
                db.session.remove()
