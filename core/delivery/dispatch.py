"""The worker's side: claim due messages, send them, retry, fail over, fall back.

Safe to run twice and to be killed anywhere: a claim is an atomic status change in the
database with a lease; a message whose worker died is reclaimed by the sweeper when the lease
ends and sent again under the same idempotency key (its id).
"""

import base64
import random
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import defer

from core.clinic.models import Patient
from core.config import external_url
from core.db import among, db, insert_many, new_id, utcnow
from core.delivery import lifecycle, receipts, routing
from core.delivery.models import Attempt, Message, MessageStatus
from core.delivery.providers import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    Outgoing,
    Result,
    send_batch,
)
from core.i18n import N_
from tenants.models import Tenant
from tenants.scoping import current_tenant_id

LEASE = timedelta(seconds=60)
MAX_TRIES = 3  # on one provider, before failing over to the next
ROUNDS = 8  # failovers and fallbacks tried within one job
TIMEOUT = 10.0  # seconds for one provider call
IN_FLIGHT = "in_flight"  # a call started, its worker may have died during it
UNKNOWN = "unknown"  # a call that failed in a way that may have reached the provider
RECOVERED, LOST = "recovered", "lost"  # what the lookup found of an unknown outcome
# Outcomes that show a provider not answering as it should (provider availability KPI).
UNANSWERED = (TEMPORARY, UNKNOWN, RECOVERED, LOST)


def deliver(message_ids: list[str]) -> int:
    """Send the due messages among ``message_ids`` (a job of the current tenant).

    Returns how many this call claimed.
    """
    tenant = db.session.get(Tenant, current_tenant_id())
    if tenant.suspended_at is not None:
        # Held, not failed: the messages stay due, and the sweeper pushes them again once
        # the operator reactivates the clinic (it skips suspended clinics meanwhile).
        return 0
    session = db.session()
    session.expire_on_commit = False  # the claimed rows are ours: no reload after each commit
    try:
        claimed = claim([uuid.UUID(i) for i in message_ids])
        if not claimed:
            return 0
        patients = {
            p.id: p
            for p in db.session.scalars(
                sa.select(Patient)
                .where(among(Patient.id, {m.patient_id for m in claimed if m.patient_id}))
                # Their encrypted attributes (conditions) are not for sending: not decrypted
                # for every message (read on first use, should a plugin want them).
                .options(defer(Patient.attributes))
            )
        }
        now = utcnow()
        todo = _recover(tenant, claimed, patients, now)
        for _ in range(ROUNDS):
            todo = _round(tenant, todo, patients, now)
            if not todo:
                break
        for message in todo:  # still undecided after every round: try again later
            _retry_later(message, now, "too many failovers in one go")
        receipts.apply_early_receipts([m for m in claimed if m.status == MessageStatus.SENT])
        db.session.commit()  # the lifecycle announces each change once this commits
    finally:
        session.expire_on_commit = True
    return len(claimed)


def claim(message_ids: list[uuid.UUID]) -> list[Message]:
    """Atomically take the due ones among ``message_ids``: status ``sending`` with a lease.

    On PostgreSQL, rows another worker holds are skipped (FOR UPDATE SKIP LOCKED). The claim
    is committed before any provider is called.
    """
    return lifecycle.claim(message_ids, LEASE)


def _round(tenant, messages, patients, now) -> list[Message]:
    """Send each message on its current channel and provider; return those to try again.

    Per provider call, in bulk: one multi-row insert of the in-flight attempts (committed
    before the call), then one UPDATE of their outcomes per distinct outcome (one for the
    whole call when all went the same way) and the accepted messages moved to ``sent`` in
    one statement (:func:`lifecycle.sent_many`; to ``delivered`` in the same one when the
    provider delivers what it takes); only the rarer outcomes (retry, failover, fallback)
    take a message at a time.
    """
    batches: dict[routing.Route, list[tuple[Message, Outgoing]]] = defaultdict(list)
    callbacks: dict[str, str] = {}  # one webhook address per provider, not per message
    for message in messages:
        decided = _decide(tenant, message, patients.get(message.patient_id), now, callbacks)
        if decided:
            batches[decided[0]].append((message, decided[1]))
    again = []
    for route, items in batches.items():
        provider = routing.provider(tenant, route)
        for start in range(0, len(items), provider.batch_size):
            chunk = items[start : start + provider.batch_size]
            attempts = _in_flight(route.provider, [m for m, _ in chunk])
            db.session.commit()  # the call is on record before it is made (see _recover)
            results, latency = send_batch(provider, [o for _, o in chunk], TIMEOUT)
            answered = utcnow()  # sent_at is the call's time, not the job's start
            results = _unheld_results(route.provider, results)
            routing.breaker.record(route.provider, any(r.outcome == ACCEPTED for r in results))
            outcomes: dict[tuple[str, str | None], list] = defaultdict(list)
            accepted = []
            for attempt_id, (message, _), result in zip(attempts, chunk, results, strict=True):
                # A call that may have reached the provider stays of unknown outcome: the
                # retry looks the message up before sending it again.
                outcome = UNKNOWN if result.unknown else result.outcome
                outcomes[(outcome, result.error)].append(attempt_id)
                if result.outcome == ACCEPTED:
                    accepted.append((message, result.provider_ref))
                elif _apply(message, route.provider, result, answered):
                    again.append(message)
            _outcomes(message.tenant_id, outcomes, latency)
            lifecycle.sent_many(accepted, route.provider, answered, provider.delivered_on_accept)
    return again


def _in_flight(provider: str, messages: list[Message]) -> list[uuid.UUID]:
    """Record a call to ``provider`` for ``messages`` before it is made: one multi-row
    insert of attempts of outcome ``in_flight``; returns their ids, in order."""
    at = utcnow()
    rows = [
        {
            "tenant_id": m.tenant_id,
            "id": new_id(),
            "message_id": m.id,
            "at": at,
            "channel": m.channel,
            "provider": provider,
            "outcome": IN_FLIGHT,
            "latency_ms": 0,
            "error": None,
        }
        for m in messages
    ]
    insert_many(Attempt.__table__, rows)
    return [r["id"] for r in rows]


def _outcomes(tenant_id, outcomes: dict[tuple[str, str | None], list], latency: int) -> None:
    """What a call answered, written on its attempts: one UPDATE per distinct answer."""
    table = Attempt.__table__
    for (outcome, error), ids in outcomes.items():
        db.session.execute(
            sa.update(table)
            .where(table.c.tenant_id == tenant_id, among(table.c.id, ids))
            .values(outcome=outcome, latency_ms=latency, error=error)
        )


def _recover(tenant, claimed: list[Message], patients, now: datetime) -> list[Message]:
    """Messages whose last call has no known outcome (its worker died during it): ask the
    provider whether it took them before sending again, so none is sent twice."""
    unknown = db.session.scalars(
        sa.select(Attempt).where(
            among(Attempt.message_id, [m.id for m in claimed]),
            Attempt.outcome.in_((IN_FLIGHT, UNKNOWN)),
        )
    ).all()
    if not unknown:
        return claimed
    by_id = {m.id: m for m in claimed}
    by_provider: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in unknown:
        by_provider[attempt.provider].append(attempt)
    for name, attempts in by_provider.items():
        route = next(
            (r for r in routing.routes(tenant, attempts[0].channel) if r.provider == name), None
        )
        found = {}
        if route is not None:
            outgoing = [
                _outgoing(
                    tenant,
                    by_id[a.message_id],
                    patients.get(by_id[a.message_id].patient_id),
                    a.channel,
                    name,
                )
                for a in attempts
            ]
            since = min(a.at for a in attempts)
            try:
                found = {
                    r.message_id: r
                    for r in routing.provider(tenant, route).lookup(outgoing, since, TIMEOUT)
                    if r.outcome == ACCEPTED
                }
            except Exception as exc:  # noqa: BLE001 - no answer: retry later, never guess
                for a in attempts:
                    _retry_later(by_id[a.message_id], now, f"{name}: lookup failed: {exc}")
                continue
            found = _unheld(name, found)
        for attempt in attempts:
            result = found.get(attempt.message_id)
            attempt.outcome = RECOVERED if result else LOST
            if result:
                _apply(by_id[attempt.message_id], name, result, now)
    return [m for m in claimed if m.status == MessageStatus.SENDING]


def _unheld(provider: str, found: dict[uuid.UUID, Result]) -> dict[uuid.UUID, Result]:
    """Drop the lookup's results whose reference another message already holds
    (:func:`receipts.held_references`)."""
    held = receipts.held_references(provider, (r.provider_ref for r in found.values()))
    return {mid: r for mid, r in found.items() if held.get(r.provider_ref, mid) == mid}


def _unheld_results(provider: str, results: list[Result]) -> list[Result]:
    """A send settled by a lookup (``looked_up``) whose reference another message holds did
    not find this message: its outcome stays unknown, and the retry looks it up again."""
    looked = {r.message_id: r for r in results if r.looked_up and r.outcome == ACCEPTED}
    if not looked:
        return results
    kept = _unheld(provider, looked)
    return [
        r
        if r.message_id not in looked or r.message_id in kept
        else replace(
            r,
            outcome=TEMPORARY,
            provider_ref=None,
            unknown=True,
            looked_up=False,
            error=f"{provider}: only another message's twin was found",
        )
        for r in results
    ]


def _decide(tenant, message: Message, patient, now: datetime, callbacks=None):
    """The route and the outgoing message, or None when the message reached a final status
    or must wait (it is then already updated)."""
    while True:
        if message.expires_at and message.expires_at <= now:
            lifecycle.finish(
                message, MessageStatus.EXPIRED, N_("expired before it could be sent"), now
            )
            return None
        channel = message.channel
        if channel is None:
            lifecycle.finish(message, MessageStatus.FAILED, N_("no channel left in the plan"), now)
            return None
        to = _address(tenant, message, patient, channel)
        routes = routing.routes_for(tenant, message, channel, to)
        candidates = [r for r in routes if r.provider not in message.exhausted] if to else []
        route = routing.choose(candidates)
        if route is not None:
            return route, _outgoing(
                tenant, message, patient, channel, route.provider, to, callbacks
            )
        if candidates:  # providers exist but every circuit is open: wait for one
            _retry_later(message, now, "every provider of the channel is unavailable")
            return None
        lifecycle.next_channel(
            message,
            f"cannot send by {channel}" if to else f"the patient cannot receive by {channel}",
        )


def _outgoing(
    tenant,
    message: Message,
    patient,
    channel: str,
    provider: str,
    to: str | None = None,
    callbacks: dict[str, str] | None = None,
) -> Outgoing:
    if to is None:
        to = _address(tenant, message, patient, channel)
    callbacks = {} if callbacks is None else callbacks
    if provider not in callbacks:  # built once per provider and job
        callbacks[provider] = _callback(tenant, provider)
    content = message.content
    return Outgoing(
        message_id=message.id,
        tenant_id=message.tenant_id,
        channel=channel,
        to=to or "",
        text=content["text"],
        subject=content.get("subject"),
        html=content.get("html"),
        callback_url=callbacks[provider],
        attachments=tuple(
            (a["filename"], a["mime_type"], base64.b64decode(a["data"]))
            for a in content.get("attachments", ())
        ),
        purpose=message.purpose,
        language=patient.language if patient else content.get("language", "en"),
    )


def _address(tenant, message: Message, patient, channel: str) -> str | None:
    """Where the message goes by ``channel``: its own address (a code sent to a number no
    record holds), else where its patient receives on that channel."""
    if message.address:
        return message.address
    return routing.address(tenant, patient, channel) if patient else None


def _apply(message: Message, provider: str, result: Result, now: datetime) -> bool:
    """Record a provider's answer; True when the message must be tried again now."""
    if result.outcome == ACCEPTED:
        lifecycle.sent(message, provider, result.provider_ref, now)
        return False
    if result.outcome == UNREACHABLE:
        lifecycle.next_channel(message, f"{provider}: {result.error}")
        return True
    if result.outcome == TEMPORARY:
        message.tries += 1
        if message.tries < MAX_TRIES:
            _retry_later(message, now, f"{provider}: {result.error}")
            return False
    # permanent, or temporary too many times: this provider is done with this message
    assert result.outcome in (PERMANENT, TEMPORARY)
    lifecycle.fail_over(message, provider, f"{provider}: {result.error}")
    return True


def _retry_later(message: Message, now: datetime, why: str) -> None:
    """Back to the outbox, due after an exponential backoff with jitter."""
    delay = min(2 ** max(message.tries, 1), 300) * (0.5 + random.random())  # noqa: S311
    lifecycle.retry(message, now + timedelta(seconds=delay), why[:200])


def _callback(tenant, provider: str) -> str:
    """The webhook address a provider posts this message's receipts to."""
    return external_url("webhooks.receipts", tenant=tenant.slug, provider=provider)
