"""Callbacks' delivery: events written in bulk as they happen, claimed by the sweeper, POSTed
signed by jobs, retried with exponential backoff for 24 hours, in order per message.

Order: an event is sent only when no earlier event of its message (or reply) still waits, so
event N+1 never leaves before event N succeeded or was given up. Once: a job holds the
event's row lock (``FOR UPDATE SKIP LOCKED``) from the POST until its outcome is committed, so
two workers never send one event; a delivered event is never sent again.
"""

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from core.plugin_api import (
    Message,
    StatusChange,
    Tenant,
    ValidationError,
    db,
    new_id,
    plugin_setting,
    run_later,
    utcnow,
)
from plugins.features.callbacks import addresses
from plugins.features.callbacks.models import DELIVERED, GIVEN_UP, WAITING, Attempt, Endpoint, Event

PLUGIN = "callbacks"
GIVE_UP_AFTER = timedelta(hours=24)
LONGEST_WAIT = timedelta(hours=1)
LEASE = timedelta(minutes=2)  # a queued job's claim; a lost job's events are claimed again
CLAIM_BATCH = 500
JOB = "plugins.features.callbacks.delivery:deliver"


def endpoint() -> Endpoint | None:
    """The current clinic's endpoint, if it registered one."""
    return db.session.scalar(sa.select(Endpoint))


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# --- writing events, in bulk -----------------------------------------------------------------


def record_status_changes(tenant, changes: list[StatusChange]) -> int:
    """Write the events of a commit's status changes in one INSERT (when the clinic has an
    endpoint), with each message's purpose, channel and API client reference."""
    if not changes or endpoint() is None:
        return 0
    ids = {c.message_id for c in changes}
    messages = {
        m.id: m
        for m in db.session.execute(
            sa.select(
                Message.id,
                Message.purpose,
                Message.channels,
                Message.channel_index,
                Message.reference,
            ).where(Message.tenant_id == tenant.id, Message.id.in_(ids))
        )
    }
    now, rows = utcnow(), []
    for change in changes:
        message = messages.get(change.message_id)
        if message is None:
            continue
        plan = message.channels or []
        channel = plan[message.channel_index] if message.channel_index < len(plan) else None
        event_id = new_id()
        rows.append(
            {
                "tenant_id": tenant.id,
                "id": event_id,
                "subject_id": change.message_id,
                "kind": "message.status",
                "at": change.at,
                "payload": {
                    "type": "message.status",
                    "event_id": str(event_id),
                    "message_id": str(change.message_id),
                    "status": change.status,
                    "at": _iso(change.at),
                    "purpose": message.purpose,
                    "channel": channel,
                    "reference": message.reference,
                },
                "state": WAITING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if rows:
        db.session.execute(sa.insert(Event), rows)  # one multi-row INSERT
    db.session.commit()
    return len(rows)


def record_reply(tenant, reply_id: uuid.UUID, patient_id, channel: str, at: datetime) -> None:
    """Add a reply's event to the transaction storing the reply (when there is an endpoint)."""
    if endpoint() is None:
        return
    event_id, now = new_id(), utcnow()
    db.session.execute(
        sa.insert(Event).values(
            tenant_id=tenant.id,
            id=event_id,
            subject_id=reply_id,
            kind="reply.received",
            at=at,
            payload={
                "type": "reply.received",
                "event_id": str(event_id),
                "reply_id": str(reply_id),
                "patient_id": str(patient_id) if patient_id else None,
                "channel": channel,
                "at": _iso(at),
            },
            state=WAITING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


# --- claiming (the sweeper) and sending (jobs) ------------------------------------------------


def _heads(now: datetime, leased: bool = False):
    """Due events with no earlier waiting event of the same subject; with ``leased``, those
    queued for a job too (what the job itself looks for)."""
    earlier = aliased(Event)
    free = sa.true() if leased else sa.or_(Event.lease_until.is_(None), Event.lease_until < now)
    return sa.select(Event).where(
        Event.state == WAITING,
        Event.next_attempt_at <= now,
        free,
        ~sa.exists().where(
            earlier.tenant_id == Event.tenant_id,
            earlier.subject_id == Event.subject_id,
            earlier.state == WAITING,
            sa.tuple_(earlier.at, earlier.id) < sa.tuple_(Event.at, Event.id),
        ),
    )


def claim_due(now: datetime) -> int:
    """Lease the due events of every clinic (in the system scope) and queue one job per
    clinic to send them; returns how many."""
    rows = db.session.execute(
        _heads(now)
        .with_only_columns(Event.tenant_id, Event.id)
        .order_by(Event.at, Event.id)
        .limit(CLAIM_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        db.session.rollback()
        return 0
    db.session.execute(
        sa.update(Event)
        .where(sa.tuple_(Event.tenant_id, Event.id).in_([tuple(r) for r in rows]))
        .values(lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()  # first the database, then Redis: a lost job's lease runs out
    by_tenant: dict[uuid.UUID, list[str]] = {}
    for tenant_id, event_id in rows:
        by_tenant.setdefault(tenant_id, []).append(str(event_id))
    for tenant_id, ids in by_tenant.items():
        # The lowest queue: a clinic's software waits, a patient's code or reminder does not.
        run_later(tenant_id, JOB, ids, queue_name="bulk")
    return len(rows)


def deliver(event_ids: list[str]) -> int:
    """The job: send these events (in the clinic's scope), then each one's successors that are
    due. Safe to run twice. Returns how many were delivered.

    At the endpoint's first failure the job stops and gives its other events back to the
    next sweep: a slow or broken endpoint costs one request per pass, never a worker held
    for a whole batch of timeouts.
    """
    delivered = 0
    for position, event_id in enumerate(event_ids):
        current: uuid.UUID | None = uuid.UUID(event_id)
        while current is not None:
            event = _lock(current)
            if event is None:
                break
            ok = send(event)
            subject = event.subject_id
            db.session.commit()
            if not ok:
                _release(event_ids[position + 1 :])
                return delivered
            delivered += 1
            current = _next_of(subject)
    return delivered


def _release(event_ids: list[str]) -> None:
    if event_ids:
        db.session.execute(
            sa.update(Event)
            .where(Event.id.in_([uuid.UUID(i) for i in event_ids]), Event.state == WAITING)
            .values(lease_until=None)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()


def _lock(event_id: uuid.UUID) -> Event | None:
    """The event, row-locked, if it still waits and is the first of its subject."""
    now = utcnow()
    return db.session.scalar(
        _heads(now, leased=True)
        .where(Event.id == event_id)
        .execution_options(populate_existing=True)
        .with_for_update(skip_locked=True, of=Event)
    )


def _next_of(subject_id: uuid.UUID) -> uuid.UUID | None:
    now = utcnow()
    return db.session.scalar(
        _heads(now, leased=True)
        .with_only_columns(Event.id)
        .where(Event.subject_id == subject_id)
        .order_by(Event.at, Event.id)
        .limit(1)
    )


def backoff(attempts: int, first: int) -> timedelta:
    """The wait after the ``attempts``-th failure: ``first`` seconds, doubling, at most an
    hour."""
    return min(timedelta(seconds=first * 2 ** (attempts - 1)), LONGEST_WAIT)


def signature(secrets_: list[str], timestamp: int, body: bytes) -> str:
    """The ``Relais-Signature`` header: ``t=<unix time>,v1=<hex HMAC-SHA256 of
    "<t>.<body>">``, one ``v1`` per secret (two during a rotation)."""
    signed = f"{timestamp}.".encode() + body
    values = ["v1=" + hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets_]
    return ",".join([f"t={timestamp}", *values])


def new_secret() -> str:
    """A fresh signing secret."""
    return "whsec_" + secrets.token_urlsafe(32)


def send(event: Event) -> bool:
    """POST one locked event to the clinic's endpoint, record the attempt and the outcome
    (not committed). Returns whether the endpoint took it (2xx)."""
    now = utcnow()
    target = endpoint()
    tenant = db.session.get(Tenant, event.tenant_id)
    event.attempts += 1
    event.lease_until = None
    if target is None:  # the endpoint was removed: nowhere to send
        event.state = GIVEN_UP
        return False
    keys = [target.secret]
    if target.previous_secret and target.previous_until and target.previous_until > now:
        keys.append(target.previous_secret)
    body = json.dumps(event.payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Relais-Callbacks/1",
        "Relais-Event-Id": str(event.id),
        "Relais-Signature": signature(keys, int(now.timestamp()), body),
    }
    status = error = None
    latency = 0
    try:
        allow = bool(plugin_setting(tenant, PLUGIN, "allow_private"))
        status, latency = addresses.post(addresses.target(target.url, allow), body, headers)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except ValidationError as exc:  # the name now resolves to a private address, or not at all
        error = f"refused:{getattr(exc, 'reason', 'scheme')}"  # shown translated by the log
    except OSError as exc:
        error = (str(exc) or type(exc).__name__)[:200]
    db.session.add(
        Attempt(
            tenant_id=event.tenant_id,
            event_id=event.id,
            at=now,
            url=target.url,
            status_code=status,
            latency_ms=latency,
            error=error[:200] if error else None,
        )
    )
    if error is None:
        event.state = DELIVERED
        return True
    first = int(plugin_setting(tenant, PLUGIN, "retry_seconds"))
    retry_at = utcnow() + backoff(event.attempts, first)
    if retry_at > event.created_at + GIVE_UP_AFTER:
        event.state = GIVEN_UP
    else:
        event.next_attempt_at = retry_at
    return False
