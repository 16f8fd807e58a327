"""A message's lifecycle: every change of a message's status goes through this module.

Whoever causes it (the outbox writing a judged message, a worker claiming and sending, the
sweeper, a delivery receipt, a cancellation), a status change is

1. checked against :data:`TRANSITIONS`, the one table of allowed changes: a change not in it
   raises :class:`TransitionError` and changes nothing;
2. applied with the fields that go with the new status (``finished_at`` of a final status, a
   worker's lease dropped when it ends...);
3. written to the message's history (a :class:`MessageEvent`);
4. announced to the clinic's plugins (``relais_message_status_changed``) once the
   transaction that holds it commits, once per change; a rolled back change is never
   announced.

Steps that change no status (a failover to the next provider, a report of non-delivery
before a fallback, the retention's erasure) are written here too, with :func:`note`: no
other module writes a message's status or its history.

Hot paths stay bulk: :func:`claim` and :func:`move_many` change many messages in one
statement and write their events in one multi-row insert; :func:`start_many` writes the first
events of a batch of new messages (``outbox.send_many``) in one.
"""

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, load_only
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.util import identity_key

from core.db import among, db, insert_many, new_id, update_many, utcnow
from core.delivery import queues
from core.delivery.models import FINAL_STATUSES, Message, MessageEvent, MessageStatus
from core.plugins import hooks_for, host
from tenants.models import Tenant
from tenants.scoping import current_scope, tenant_scope

S = MessageStatus

# (from, to): every status change a message may make. ``None`` is a message being written.
TRANSITIONS: frozenset[tuple[MessageStatus | None, MessageStatus]] = frozenset(
    {
        # outbox.send, as the regulations judged it
        (None, S.PENDING),
        (None, S.SCHEDULED),
        (None, S.DENIED),
        # waiting: its time comes (sweeper), it expires (sweeper), it is cancelled
        (S.SCHEDULED, S.PENDING),
        (S.SCHEDULED, S.EXPIRED),
        (S.SCHEDULED, S.CANCELLED),
        (S.PENDING, S.SENDING),  # a worker's claim
        (S.PENDING, S.EXPIRED),
        (S.PENDING, S.CANCELLED),
        # a worker's outcome; or its lease ended (sweeper's reclaim)
        (S.SENDING, S.SENT),
        (S.SENDING, S.PENDING),  # retry later, or reclaimed
        (S.SENDING, S.FAILED),  # no channel of its plan could carry it
        (S.SENDING, S.EXPIRED),
        # receipts, and the sweeper's wait for a device's acknowledgement
        (S.SENT, S.DELIVERED),
        (S.SENT, S.UNDELIVERED),
        (S.SENT, S.PENDING),  # not delivered: by the next channel of its plan
        (S.UNDELIVERED, S.DELIVERED),  # a late report of delivery
    }
)
# Changes neither written to the history nor announced: a claim is a lease of seconds whose
# outcome (sent, retry, failover, failed...) is always written and announced by the job that
# holds it, or by the sweeper that reclaims it; recording it too would double the history's
# rows and the hot path's inserts for a state no one acts on.
QUIET: frozenset[tuple[MessageStatus | None, MessageStatus]] = frozenset({(S.PENDING, S.SENDING)})

_CHANGES = "relais_status_changes"  # (tenant id, message id, status, at), this transaction's
_READY = "relais_status_committed"  # the same, committed: announced when the transaction ends
_MARKS = "relais_status_savepoints"  # savepoint -> how many changes came before it


class TransitionError(RuntimeError):
    """A status change :data:`TRANSITIONS` does not allow; nothing was changed."""

    def __init__(self, frm: MessageStatus | None, to: MessageStatus) -> None:
        super().__init__(f"a message cannot go from {frm or 'nothing'} to {to}")
        self.frm, self.to = frm, to


def allowed(frm: MessageStatus | None, to: MessageStatus) -> bool:
    """Whether a message may go from ``frm`` (None: not written yet) to ``to``."""
    return (None if frm is None else S(frm), S(to)) in TRANSITIONS


def check(frm: MessageStatus | None, to: MessageStatus) -> None:
    """:raises TransitionError: when :data:`TRANSITIONS` does not allow the change."""
    if not allowed(frm, to):
        raise TransitionError(frm, to)


# --- one message ------------------------------------------------------------------------------


def start(message: Message, status: MessageStatus, detail: str | None, at: datetime) -> None:
    """A new message enters the outbox as judged: pending, scheduled or denied."""
    _change(message, status, detail, at=at)


def sent(message: Message, provider: str, provider_ref: str | None, at: datetime) -> None:
    """A provider accepted the message."""
    _change(
        message,
        S.SENT,
        provider,
        at=at,
        provider=provider,
        provider_ref=provider_ref,
        sent_at=at,
        tries=0,
    )


def retry(message: Message, due: datetime, why: str) -> None:
    """Back to the outbox, due at ``due`` (a worker's backoff)."""
    _change(message, S.PENDING, why, step="retry", next_attempt_at=due)


def finish(message: Message, status: MessageStatus, why: str | None, at: datetime) -> None:
    """End the message: expired, failed, undelivered, delivered (``at`` is then its
    reception)..."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status} is not a final status")
    _change(message, status, why, at=at)


def report(
    message: Message, status: MessageStatus, at: datetime, error: str | None, why: str
) -> None:
    """A provider's delivery report (``delivered`` or ``undelivered``) on a sent message.

    The report is written as the provider gave it; one of non-delivery sends the message by
    the next channel of its plan (``why``) when there is one, else ends it undelivered.
    """
    check(message.status, status)  # nothing written when the report cannot apply
    _event(message, status, error)
    if status == S.UNDELIVERED and fall_back(message, why):
        return
    _change(message, status, None, at=at, written=True)


def fall_back(message: Message, why: str) -> bool:
    """Send a sent message again by the next channel of its plan, after its current channel
    failed to reach the patient (an undelivered SMS, an unanswered call, an unacknowledged
    push); it is queued after commit.

    Returns False, changing nothing, when the plan has no next channel or the message has
    expired: it then stays as it is for the caller to end.
    """
    now = utcnow()
    if message.channel_index + 1 >= len(message.channels or ()):
        return False
    if message.expires_at is not None and message.expires_at <= now:
        return False
    _change(
        message,
        S.PENDING,
        why[:200],
        at=now,
        step="fallback",
        channel_index=message.channel_index + 1,
        exhausted=[],
        tries=0,
        next_attempt_at=now,
        enqueued_at=now,  # pushed right after commit; the sweeper checks it got there
        provider=None,
        provider_ref=None,
        sent_at=None,
        finished_at=None,
    )
    queues.enqueue_after_commit(message)
    return True


def cancel(message: Message, reason: str) -> bool:
    """Cancel a message that has not left yet (a cancelled appointment's reminders).

    Returns False, changing nothing, when it is too late: being sent, sent, or final.
    """
    if not allowed(message.status, S.CANCELLED):
        return False
    _change(message, S.CANCELLED, reason[:200])
    return True


def next_channel(message: Message, why: str) -> None:
    """A worker moves on to the next channel of the plan (the current one cannot carry it);
    the message stays claimed."""
    note(message, "fallback", why)
    message.channel_index += 1
    message.exhausted, message.tries = [], 0


def fail_over(message: Message, provider: str, why: str) -> None:
    """A worker gives up on ``provider`` for this message: the next one of the channel gets
    it; the message stays claimed."""
    note(message, "failover", why)
    message.exhausted = [*message.exhausted, provider]
    message.tries = 0


def note(message: Message, step: str, detail: str | None = None) -> None:
    """Write a step that changes no status to the message's history."""
    _event(message, step, detail)


# --- many messages ----------------------------------------------------------------------------


def claim(
    message_ids: list[uuid.UUID],
    lease: timedelta,
    plan: Callable[[list[Message]], dict[uuid.UUID, str]] | None = None,
) -> list[Message]:
    """Atomically take the due ones among ``message_ids``: status ``sending`` with a lease,
    the rows locked then changed in the same transaction; returns them. Committed before
    any provider is called.

    ``plan`` is called with the locked due messages (already ``sending``, as the claim
    writes them) before the claim is written; it returns the provider each one's first call
    goes to (by message id), written by the claim's UPDATE as the call in flight
    (``calling``, ``calling_since``): the call is on record before it is made without a
    write of its own. ``plan`` may change messages as the one-message functions do (expired,
    on to the next channel, retried later); those it leaves ``sending`` are claimed. A
    message it gives no provider keeps the call in flight it had.

    On PostgreSQL, rows another worker holds are skipped (FOR UPDATE SKIP LOCKED). Quiet
    (see :data:`QUIET`).
    """
    check(S.PENDING, S.SENDING)
    claim_id, now = new_id(), utcnow()
    table = Message.__table__
    # Rows are found by primary key only, and whether they are due is decided here, not in
    # the WHERE clause. Given the status and time too, the planner of a database never
    # analyzed (a new deployment, autovacuum off) prefers the small indexes on the status and
    # on the clinic, scanning every due message of the clinic for each batch of a hundred
    # (55 ms at 20,000 due, growing with the backlog), and a plan made early is kept by a
    # long-lived connection. By primary key it is a hundred index probes whatever the size.
    # An ORM select, so that the clinic's scope adds ``tenant_id = ...``: the primary key is
    # (tenant_id, id), and by id alone each claim would read the whole index.
    found = db.session.scalars(
        sa.select(Message)
        .options(load_only(*(getattr(Message, name) for name in _CLAIMED)))
        .where(among(Message.id, message_ids))
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
    taken = [
        m
        for m in found
        if m.status == S.PENDING and m.next_attempt_at is not None and m.next_attempt_at <= now
    ]
    same = {"status": S.SENDING, "claim_id": claim_id, "lease_until": now + lease}
    for message in taken:  # as the claim writes them, for ``plan`` to go on from
        _written(message, same)
    calls = plan(taken) if plan and taken else {}
    claimed = [m for m in taken if m.status == S.SENDING]
    rows = [
        {
            "tenant_id": m.tenant_id,
            "id": m.id,
            "calling": calls.get(m.id, m.calling),
            "calling_since": now if m.id in calls else m.calling_since,
        }
        for m in claimed
    ]
    update_many(table, rows, **same)
    for message, row in zip(claimed, rows, strict=True):
        _written(message, {"calling": row["calling"], "calling_since": row["calling_since"]})
    db.session.commit()
    return claimed


def calling(messages: list[Message], provider: str, at: datetime) -> None:
    """Record, before it is made, a call to ``provider`` for these claimed messages (a call
    after a failover or a fallback; a claim records its first calls itself): one UPDATE."""
    update_many(
        Message.__table__,
        [{"tenant_id": m.tenant_id, "id": m.id} for m in messages],
        calling=provider,
        calling_since=at,
    )
    for message in messages:
        _written(message, {"calling": provider, "calling_since": at})


# What a worker reads of the messages it claims; the rest (the verdict, the client's
# reference, the dates of other steps...) is loaded only if something asks for it. Each
# column read costs: the JSON and time columns alone doubled the claim's Python time.
_CLAIMED = (
    "tenant_id",
    "id",
    "patient_id",
    "address",
    "key_kind",
    "purpose",
    "status",
    "channels",
    "channel_index",
    "provider",
    "provider_ref",
    "exhausted",
    "tries",
    "content",
    "expires_at",
    "claim_id",
    "lease_until",
    "next_attempt_at",
    "calling",
    "calling_since",
)


def start_many(started: Iterable[tuple[Message, MessageStatus]], at: datetime) -> set[uuid.UUID]:
    """New messages enter the outbox as judged (pending, scheduled or denied), many at once:
    the messages (not in the session; their ``verdict_reason`` is their first event's detail)
    in one INSERT, their first events in one more, announced after commit as
    :func:`start` does one by one. The caller commits.

    A message whose client reference (``api_key_id``, ``reference``) a concurrent
    transaction already wrote is skipped (ON CONFLICT DO NOTHING), with its event.

    :return: the ids of the messages written.
    :raises TransitionError: when a status is not one a message may start in; nothing is
        then written.
    """
    started = [(m, S(s)) for m, s in started]
    for status in {s for _m, s in started}:
        check(None, status)
    if not started:
        return set()
    table = Message.__table__
    for message, status in started:
        message.__dict__["status"] = status  # as new_message holds its values
    written = set(
        insert_many(
            table,
            [_row(message, at) for message, _s in started],
            skip_conflicts=True,
            returning=table.c.id,
        )
    )
    steps = [(m.tenant_id, m.id, str(s), m.verdict_reason) for m, s in started if m.id in written]
    _events_many(steps, at)
    changes = db.session.info.setdefault(_CHANGES, [])
    changes.extend((tenant_id, message_id, step, at) for tenant_id, message_id, step, _ in steps)
    return written


def new_message(**values: Any) -> Message:
    """A transient :class:`Message` holding ``values`` (columns), for the outbox to judge.

    The values go straight into the instance's state, as the ORM puts a loaded row's: its
    attribute events (a fifth of the bulk path's Python) record changes to flush, and a new
    message has none to record. It is written whole either way: added to the session
    (``outbox.send``: the INSERT takes every value it holds) or by :func:`start_many`.
    """
    message = _new_instance()
    message.__dict__.update(values)
    return message


_new_instance = Message._sa_class_manager.new_instance  # type: ignore[attr-defined]
_COLUMNS = tuple(c.key for c in Message.__table__.columns)


def _row(message: Message, at: datetime) -> dict[str, Any]:
    """A new message's columns for a Core INSERT, with the defaults the ORM would fill."""
    values = message.__dict__  # what it holds, without a descriptor call per column
    row = {key: values.get(key) for key in _COLUMNS}
    row.update(
        channel_index=row["channel_index"] or 0,
        tries=row["tries"] or 0,
        exhausted=row["exhausted"] or [],
        created_at=at,
    )
    return row


def move_many(
    where: Iterable[Any],
    frm: Iterable[MessageStatus],
    to: MessageStatus,
    why: str,
    limit: int,
    now: datetime | None = None,
) -> int:
    """Change up to ``limit`` messages in one of the statuses ``frm`` that match ``where`` to
    ``to``: one UPDATE (rows others hold are skipped) and one multi-row insert of their
    events. The caller commits. Returns how many changed.

    :raises TransitionError: when a change from one of ``frm`` to ``to`` is not allowed;
        nothing is then changed.
    """
    frm = [S(f) for f in frm]
    for status in frm:
        check(status, to)
    now = now or utcnow()
    taken = (
        sa.select(Message.tenant_id, Message.id)
        .where(Message.status.in_(frm), *where)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = db.session.execute(
        sa.update(Message)
        .where(sa.tuple_(Message.tenant_id, Message.id).in_(taken))
        .values(status=to, **_effects(to, now))
        .returning(Message.tenant_id, Message.id)
        .execution_options(synchronize_session=False)
    ).all()
    if rows:
        _events_many([(tenant_id, message_id, str(to), why) for tenant_id, message_id in rows], now)
        changes = db.session.info.setdefault(_CHANGES, [])
        changes.extend((tenant_id, message_id, str(to), now) for tenant_id, message_id in rows)
    return len(rows)


def note_many(tenant_id: uuid.UUID, message_ids: list[uuid.UUID], step: str, at: datetime) -> None:
    """Write a step that changes no status to many messages' histories, in one insert (the
    retention's erasure marker)."""
    _events_many([(tenant_id, i, step, None) for i in message_ids], at)


def sent_many(
    sent: list[tuple[Message, str | None]], provider: str, at: datetime, delivered: bool = False
) -> None:
    """A provider accepted these claimed messages (``(message, provider_ref)``): each goes
    from ``sending`` to ``sent`` as :func:`sent` would take it, in one UPDATE of them all
    (:func:`core.db.update_many`) and one multi-row insert of their events, not a unit of
    work per message. ``delivered``: taking them was delivering them (the provider is the
    recipient's mailbox): each then goes on to ``delivered`` in the same UPDATE, both steps
    in its history. The caller commits; the changes are announced after that commit.

    The messages keep the values written (they are marked committed, not dirty).

    :raises TransitionError: when one of them is not ``sending``; nothing is then changed.
    """
    if not sent:
        return
    for message, _ref in sent:
        check(message.status, S.SENT)
    session = db.session()
    if session.dirty or session.new:  # a failover's steps first: they precede the send
        session.flush()
    fields = {**_effects(S.SENT, at), "status": S.SENT, "provider": provider, "sent_at": at}
    fields["tries"] = 0
    if delivered:
        check(S.SENT, S.DELIVERED)
        fields.update(_effects(S.DELIVERED, at), status=S.DELIVERED)
    update_many(
        Message.__table__,
        [{"tenant_id": m.tenant_id, "id": m.id, "provider_ref": ref} for m, ref in sent],
        **fields,
    )
    # The events are stamped when written, as :func:`sent`'s are: after the steps before them.
    rows = _event_rows([(m.tenant_id, m.id, str(S.SENT), provider) for m, _ref in sent], utcnow())
    if delivered:  # stamped after their sends, in the same insert
        steps = [(m.tenant_id, m.id, str(S.DELIVERED), provider) for m, _ref in sent]
        rows += _event_rows(steps, utcnow())
    insert_many(MessageEvent.__table__, rows)
    changes = db.session.info.setdefault(_CHANGES, [])
    for message, ref in sent:
        _written(message, {**fields, "provider_ref": ref})
        changes.append((message.tenant_id, message.id, str(S.SENT), at))
    if delivered:
        changes.extend((m.tenant_id, m.id, str(S.DELIVERED), at) for m, _ref in sent)


def delivered_by_reference(
    provider: str,
    reports: list[tuple[str, datetime, str | None]],
    tenant_id: uuid.UUID | None = None,
) -> set[str]:
    """Providers' reports of delivery, ``(provider reference, when, detail)``, applied to
    the messages of ``provider`` with those references that are sent (or undelivered), each
    as :func:`report` writes one, without reading the messages first: one UPDATE that finds,
    checks and changes them, and one multi-row insert of their history steps.
    A message in any other status (not sent yet, delivered already, failed...) is left as
    it is. Only the messages of ``tenant_id`` (default: the clinic in scope) are looked at.
    The caller commits; the changes are announced after that commit; copies of the messages
    the session holds keep the values written.

    :return: the references whose message was delivered by this call.
    """
    if not reports:
        return set()
    check(S.SENT, S.DELIVERED)
    check(S.UNDELIVERED, S.DELIVERED)
    table = Message.__table__
    ref_type, at_type = table.c.provider_ref.type, table.c.delivered_at.type
    refs = sa.bindparam("refs", [r for r, _at, _d in reports], type_=ARRAY(ref_type))
    ats = sa.bindparam("ats", [at for _r, at, _d in reports], type_=ARRAY(at_type))
    given = (
        sa.func.unnest(refs, ats)
        .table_valued(sa.column("ref", ref_type), sa.column("at", at_type))
        .render_derived(name="given", with_types=False)
    )
    # The status is checked by the UPDATE itself: a report racing another one (or a
    # worker's change) finds the row as that one committed it, never moves it backwards.
    where = [
        table.c.provider == provider,
        table.c.provider_ref == given.c.ref,
        table.c.provider_ref == sa.any_(refs),  # found by reference whatever the statistics
        table.c.status.in_([S.SENT, S.UNDELIVERED]),
    ]
    scope = tenant_id or current_scope()
    if isinstance(scope, uuid.UUID):  # the clinic's own messages (row-level security too)
        where.append(table.c.tenant_id == scope)
    session = db.session()
    if session.dirty or session.new:  # the steps before these first
        session.flush()
    rows = session.execute(
        sa.update(table)
        .where(*where)
        .values(
            status=S.DELIVERED,
            delivered_at=given.c.at,
            finished_at=given.c.at,
            lease_until=None,
            claim_id=None,
        )
        .returning(table.c.tenant_id, table.c.id, table.c.provider_ref, given.c.at)
    ).all()
    if not rows:
        return set()
    details = {r: d for r, _at, d in reports}
    _events_many([(t, i, str(S.DELIVERED), details[ref]) for t, i, ref, _at in rows], utcnow())
    for owner, message_id, _ref, at in rows:  # a copy the session holds: as written
        held = session.identity_map.get(identity_key(Message, (owner, message_id)))
        if held is not None:
            values = {"status": S.DELIVERED, "delivered_at": at, "finished_at": at}
            _written(held, {**values, "lease_until": None, "claim_id": None})
    changes = session.info.setdefault(_CHANGES, [])
    changes.extend((t, i, str(S.DELIVERED), at) for t, i, _ref, at in rows)
    return {ref for _t, _i, ref, _at in rows}


def _events_many(steps: list[tuple[uuid.UUID, uuid.UUID, str, str | None]], at: datetime) -> None:
    """Many messages' history steps, ``(tenant id, message id, step, detail)``, in one
    multi-row insert (the bulk twin of :func:`_event`)."""
    insert_many(MessageEvent.__table__, _event_rows(steps, at))


def _event_rows(steps: list[tuple[uuid.UUID, uuid.UUID, str, str | None]], at: datetime):
    return [
        {
            "tenant_id": tenant_id,
            "id": new_id(),
            "message_id": message_id,
            "at": at,
            "status": step,
            "detail": detail[:200] if detail else None,
        }
        for tenant_id, message_id, step, detail in steps
    ]


# --- the inside -------------------------------------------------------------------------------


def _written(message: Message, values: dict[str, Any]) -> None:
    """``values`` as the database now holds them (a bulk statement wrote them): set on the
    message as loaded, not as changes to flush. What ``set_committed_value`` does, for
    every value at once: it costs a tenth of a worker's time called per value (eleven a
    message on the way to sent)."""
    state = instance_state(message)
    state.dict.update(values)
    state._commit(state.dict, values)  # noqa: SLF001 - set_committed_value's own step


def _effects(status: MessageStatus, at: datetime) -> dict[str, Any]:
    """The fields that go with entering ``status``."""
    if status == S.SENDING:
        return {}
    if status == S.PENDING:  # due again: no worker holds it, nothing queued it yet
        return {"lease_until": None, "claim_id": None, "enqueued_at": None}
    if status == S.SENT:  # the call's outcome is known: accepted
        return {"lease_until": None, "claim_id": None, "calling": None, "calling_since": None}
    if status in FINAL_STATUSES:
        found = {"finished_at": at, "lease_until": None, "claim_id": None}
        if status == S.DELIVERED:
            found["delivered_at"] = at
        return found
    return {}


def _change(
    message: Message,
    to: MessageStatus,
    detail: str | None,
    *,
    at: datetime | None = None,
    step: str | None = None,
    written: bool = False,
    **fields: Any,
) -> None:
    frm = message.status
    check(frm, to)
    at = at or utcnow()
    message.status = to
    for name, value in {**_effects(to, at), **fields}.items():
        setattr(message, name, value)
    if (frm, to) in QUIET:
        return
    if not written:
        _event(message, step or to, detail)
    db.session.info.setdefault(_CHANGES, []).append((message.tenant_id, message.id, str(to), at))


def _event(message: Message, step: str, detail: str | None) -> None:
    db.session.add(
        MessageEvent(
            tenant_id=message.tenant_id,
            message_id=message.id,
            status=str(step),
            detail=detail[:200] if detail else None,
        )
    )


# --- announcing, after commit -----------------------------------------------------------------


class StatusChange(NamedTuple):
    """One committed status change, as ``relais_message_statuses_changed`` hands it."""

    message_id: uuid.UUID
    status: str  # the new status, e.g. "delivered"
    at: datetime  # when it happened (aware UTC)


def announce(changes: list[tuple[uuid.UUID, uuid.UUID, str, datetime]]) -> None:
    """Call ``relais_message_status_changed`` for each committed change, in order, with the
    plugins enabled for the message's clinic, in that clinic's scope."""
    hook = host().pm.hook
    if not (
        hook.relais_message_status_changed.get_hookimpls()
        or hook.relais_message_statuses_changed.get_hookimpls()
    ):
        return  # no plugin listens: no clinic to reload after the commit that expired it
    by_tenant: dict[uuid.UUID, list] = defaultdict(list)
    for change in changes:
        by_tenant[change[0]].append(change)
    for tenant_id, own in by_tenant.items():
        with tenant_scope(tenant_id) if current_scope() != tenant_id else nullcontext():
            tenant = db.session.get(Tenant, tenant_id)
            if tenant is None:  # deleted meanwhile: no one to tell
                continue
            hooks = hooks_for(tenant)
            changed = hooks.relais_message_status_changed
            for _tenant_id, message_id, status, at in own:
                changed(tenant=tenant, message_id=message_id, status=status, at=at)
            hooks.relais_message_statuses_changed(
                tenant=tenant, changes=[StatusChange(m, s, a) for _t, m, s, a in own]
            )


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the transaction goes on
        return
    changes = session.info.pop(_CHANGES, None)
    if changes:
        session.info[_READY] = changes


def _savepoint_begun(session: Session, transaction) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[transaction] = len(session.info.get(_CHANGES, ()))


def _after_soft_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.nested:  # what the savepoint held is undone: never announced
        mark = session.info.get(_MARKS, {}).pop(previous_transaction, None)
        if mark is not None and _CHANGES in session.info:
            del session.info[_CHANGES][mark:]


def _after_transaction_end(session: Session, transaction) -> None:
    """The transaction is over: announce what it committed (the session can query again,
    so listeners may read and write), forget what it did not."""
    if transaction.parent is not None:
        return
    session.info.pop(_MARKS, None)
    session.info.pop(_CHANGES, None)  # ended without a commit (rolled back, closed)
    ready = session.info.pop(_READY, None)
    if ready:
        announce(ready)


def install(session_class=Session) -> None:
    """Register the announcements after commit; called once by the app factory."""
    if not event.contains(session_class, "after_commit", _after_commit):
        event.listen(session_class, "after_commit", _after_commit)
        event.listen(session_class, "after_transaction_create", _savepoint_begun)
        event.listen(session_class, "after_soft_rollback", _after_soft_rollback)
        event.listen(session_class, "after_transaction_end", _after_transaction_end)
