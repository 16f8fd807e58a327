"""The worker's side: claim due messages, send them, retry, fail over, fall back.

Safe to run twice and to be killed anywhere: a claim is an atomic status change in the
database with a lease; a message whose worker died is reclaimed by the sweeper when the lease
ends and sent again under the same idempotency key (its id).
"""

import base64
import random
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from core.clinic.models import Patient
from core.clinic.patients import for_sending
from core.config import external_url
from core.db import among, db, insert_many, new_id, utcnow
from core.delivery import jobs, lifecycle, receipts, routing
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
# Messages claimed and sent together: a code behind a campaign's job waits for one part at
# most (the job hands its rest back when codes wait, see deliver).
PART = 100
JOB_SECONDS = 30.0  # a job running longer hands its rest back (RQ's timeout is 180 s)
MAX_TRIES = 3  # on one provider, before failing over to the next
ROUNDS = 8  # failovers and fallbacks tried within one job
TIMEOUT = 10.0  # seconds for one provider call
IN_FLIGHT = "in_flight"  # a call started, its worker may have died during it
UNKNOWN = "unknown"  # a call that failed in a way that may have reached the provider
RECOVERED, LOST = "recovered", "lost"  # what the lookup found of an unknown outcome
# Outcomes that show a provider not answering as it should (provider availability KPI).
UNANSWERED = (TEMPORARY, UNKNOWN, RECOVERED, LOST)


def deliver(message_ids: list[str]) -> int:
    """Send the due messages among ``message_ids`` (a job of the current tenant), a part
    of :data:`PART` at a time, each claimed and recorded in its own transactions.

    Between parts, a job whose worker has work waiting on a queue it takes first (a code
    behind a campaign), or that has run for :data:`JOB_SECONDS`, hands the ids it has not
    claimed back to the front of its queue and ends: a job of many parts costs RQ's
    bookkeeping once, and a code still waits for one part at most.

    Returns how many this call claimed.
    """
    tenant = db.session.get(Tenant, current_tenant_id())
    if tenant.suspended_at is not None:
        # Held, not failed: the messages stay due, and the sweeper pushes them again once
        # the operator reactivates the clinic (it skips suspended clinics meanwhile).
        return 0
    session = db.session()
    session.expire_on_commit = False  # the claimed rows are ours: no reload after each commit
    callbacks: dict[str, str] = {}  # one webhook address per provider, not per job
    began, taken = time.monotonic(), 0
    try:
        for start in range(0, len(message_ids), PART):
            rest = message_ids[start:]
            if (
                start
                and (time.monotonic() - began > JOB_SECONDS or jobs.work_ahead())
                and jobs.hand_back(jobs.DELIVER, rest)
            ):
                break
            taken += _deliver_part(tenant, rest[:PART], callbacks)
    finally:
        session.expire_on_commit = True
    return taken


def _deliver_part(tenant, message_ids: list[str], callbacks: dict[str, str]) -> int:
    """Claim the due ones among ``message_ids``, send them, record what came of it."""
    patients: dict = {}
    first: Batches = defaultdict(list)  # the first round's calls, put on record by the claim
    taken: list[Message] = []  # claimed, whatever came of them

    def plan(locked: list[Message]) -> dict[uuid.UUID, str]:
        taken.extend(locked)
        patients.update(_patients(locked))
        now = utcnow()
        calls = {}
        for message in locked:
            if message.calling:  # its last call's outcome is unknown: looked up first
                continue
            patient = patients.get(message.patient_id)
            decided = _decide(tenant, message, patient, now, callbacks)
            if decided:
                first[decided[0]].append((message, decided[1]))
                calls[message.id] = decided[0].provider
        return calls

    claimed = lifecycle.claim([uuid.UUID(i) for i in message_ids], LEASE, plan)
    now = utcnow()
    routed = _ids(first)
    todo = _recover(tenant, [m for m in claimed if m.calling and m.id not in routed])
    todo = _send(tenant, first, recorded=True) + todo
    for _ in range(ROUNDS):
        if not todo:
            break
        todo = _round(tenant, todo, patients, callbacks)
    for message in todo:  # still undecided after every round: try again later
        _retry_later(message, now, "too many failovers in one go")
    receipts.apply_early_receipts([m for m in claimed if m.status == MessageStatus.SENT])
    db.session.commit()  # the lifecycle announces each change once this commits
    return len(taken)


Batches = dict[routing.Route, list[tuple[Message, Outgoing]]]


def _ids(batches: Batches) -> set[uuid.UUID]:
    return {m.id for items in batches.values() for m, _ in items}


def _patients(messages: list[Message]) -> dict:
    """The patients of ``messages``, by id, with what sending reads of them (the addresses,
    the language); the rest on first use, should a plugin want it: loading every column
    cost a tenth of a worker's time."""
    wanted = {m.patient_id for m in messages if m.patient_id}
    return for_sending(wanted, only=_SENDING) if wanted else {}


_SENDING = (
    Patient.tenant_id,
    Patient.id,
    Patient.phone,
    Patient.phone_line,
    Patient.email,
    Patient.language,
)


def claim(message_ids: list[uuid.UUID]) -> list[Message]:
    """Atomically take the due ones among ``message_ids``: status ``sending`` with a lease.

    On PostgreSQL, rows another worker holds are skipped (FOR UPDATE SKIP LOCKED). The claim
    is committed before any provider is called.
    """
    return lifecycle.claim(message_ids, LEASE)


def _round(tenant, messages, patients, callbacks) -> list[Message]:
    """Send each message on its current channel and provider (after a failover, a fallback
    or a lookup); return those to try again."""
    now = utcnow()
    batches: Batches = defaultdict(list)
    for message in messages:
        decided = _decide(tenant, message, patients.get(message.patient_id), now, callbacks)
        if decided:
            batches[decided[0]].append((message, decided[1]))
    return _send(tenant, batches, recorded=False)


def _send(tenant, batches: Batches, recorded: bool) -> list[Message]:
    """Make the calls of ``batches``; return the messages to try again now.

    Per provider call, in bulk: unless the claim ``recorded`` them, the calls in flight
    (:func:`lifecycle.calling`, committed before the call); after it, one multi-row insert
    of its attempts, each with its outcome, and the accepted messages moved to ``sent`` in
    one statement (:func:`lifecycle.sent_many`; to ``delivered`` in the same one when the
    provider delivers what it takes); only the rarer outcomes (retry, failover, fallback)
    take a message at a time.
    """
    again = []
    for route, items in batches.items():
        provider = routing.provider(tenant, route)
        for start in range(0, len(items), provider.batch_size):
            chunk = items[start : start + provider.batch_size]
            called = utcnow()
            if not recorded:
                lifecycle.calling([m for m, _ in chunk], route.provider, called)
                db.session.commit()  # the call is on record before it is made (see _recover)
            results, latency = send_batch(provider, [o for _, o in chunk], TIMEOUT)
            answered = utcnow()  # sent_at is the call's time, not the job's start
            results = _unheld_results(route.provider, results)
            routing.breaker.record(route.provider, any(r.outcome == ACCEPTED for r in results))
            attempts, accepted = [], []
            for (message, _), result in zip(chunk, results, strict=True):
                # A call that may have reached the provider stays of unknown outcome, its
                # call in flight kept: the retry looks the message up before sending again.
                outcome = UNKNOWN if result.unknown else result.outcome
                attempts.append(_attempt(message, route.provider, called, outcome, result.error))
                if result.outcome == ACCEPTED:
                    accepted.append((message, result.provider_ref))
                    continue
                if not result.unknown:
                    message.calling = message.calling_since = None
                if _apply(message, route.provider, result, answered):
                    again.append(message)
            for row in attempts:
                row["latency_ms"] = latency
            insert_many(Attempt.__table__, attempts)
            lifecycle.sent_many(accepted, route.provider, answered, provider.delivered_on_accept)
    return again


def _attempt(message: Message, provider: str, at: datetime, outcome: str, error) -> dict:
    """An attempt's row: one call to ``provider`` for ``message``, and what came of it."""
    return {
        "tenant_id": message.tenant_id,
        "id": new_id(),
        "message_id": message.id,
        "at": at,
        "channel": message.channel,
        "provider": provider,
        "outcome": outcome,
        "latency_ms": 0,
        "error": error[:200] if error else None,
    }


def _recover(tenant, messages: list[Message]) -> list[Message]:
    """Messages whose last call has no known outcome (its worker died during it, or it
    failed in a way that may have reached the provider): ask the provider whether it took
    them before sending again, so none is sent twice. Returns those to send again now."""
    if not messages:
        return []
    now = utcnow()
    patients = _patients(messages)
    by_provider: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_provider[message.calling].append(message)
    attempts = []
    for name, group in by_provider.items():
        route = next(
            (r for r in routing.routes(tenant, group[0].channel) if r.provider == name), None
        )
        found = {}
        if route is not None:
            outgoing = [
                _outgoing(tenant, m, patients.get(m.patient_id), m.channel, name) for m in group
            ]
            since = min(m.calling_since for m in group)
            try:
                found = {
                    r.message_id: r
                    for r in routing.provider(tenant, route).lookup(outgoing, since, TIMEOUT)
                    if r.outcome == ACCEPTED
                }
            except Exception as exc:  # noqa: BLE001 - no answer: retry later, never guess
                for m in group:
                    _retry_later(m, now, f"{name}: lookup failed: {exc}")
                continue
            found = _unheld(name, found)
        for outcome in (RECOVERED, LOST):
            looked = [m for m in group if (m.id in found) == (outcome == RECOVERED)]
            attempts += _settled(looked, name, outcome, now)
        for message in group:
            result = found.get(message.id)
            if result:
                _apply(message, name, result, now)
            else:  # not taken: sent again, as a new call
                message.calling = message.calling_since = None
    insert_many(Attempt.__table__, attempts)
    return [m for m in messages if m.status == MessageStatus.SENDING]


def _settled(messages: list[Message], provider: str, outcome: str, at: datetime) -> list[dict]:
    """What a lookup found of ``messages``' calls to ``provider``: written on their attempts
    of unknown outcome; returns the rows of attempts to insert for the calls that have none
    (their worker died during them)."""
    if not messages:
        return []
    table = Attempt.__table__
    written = set(
        db.session.scalars(
            sa.update(table)
            .where(
                table.c.tenant_id == messages[0].tenant_id,  # the index's first column
                among(table.c.message_id, [m.id for m in messages]),
                table.c.provider == provider,
                table.c.outcome == UNKNOWN,
            )
            .values(outcome=outcome)
            .returning(table.c.message_id)
        )
    )
    return [_attempt(m, provider, at, outcome, None) for m in messages if m.id not in written]


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
