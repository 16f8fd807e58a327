"""Delivery receipts and patient replies, as providers' webhooks bring them."""

import uuid
from collections import Counter, defaultdict

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.clinic.models import Patient
from core.db import among, db, new_id
from core.delivery import lifecycle
from core.delivery.models import EarlyReceipt, InboundMessage, Message, MessageStatus
from core.delivery.providers import Inbound, Receipt
from core.group_commit import GroupCommit
from core.plugins import hooks_for
from tenants.models import Tenant
from tenants.scoping import current_tenant_id, tenant_scope

RECEIPT_STATUSES = {"delivered": MessageStatus.DELIVERED, "undelivered": MessageStatus.UNDELIVERED}
# A report for a message in one of these is kept (an early receipt) until its send is recorded.
NOT_SENT_YET = (MessageStatus.SCHEDULED, MessageStatus.PENDING, MessageStatus.SENDING)

# Why a lock, and why this one. A report and the worker recording the send race: the webhook
# may look the message up while the worker's ``sent`` is not committed (no such reference
# yet: the report is kept as an early receipt), and commit that early receipt after the
# worker looked for early receipts (none yet). Each saw the other's past; the report was
# never applied. A row lock on the message cannot serialise them: the webhook finds the
# message by its provider's reference, which only the worker's uncommitted write holds, so
# it finds no row to lock. What both sides know is the (provider, reference) pair: both take
# a transaction-scoped advisory lock on it, then look (the webhook: for the message; the
# worker: for early receipts), then write, then commit. Whichever comes second sees what
# the first committed. Locks are taken in one global order (sorted by their hash, several at
# once) so that a worker's batch and a webhook carrying many reports never deadlock.
_LOCKS = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
    " FROM unnest(CAST(:keys AS text[])) AS k ORDER BY hashtextextended(k, 0)"
)


def held_references(provider: str, refs) -> dict[str, "uuid.UUID"]:
    """Which of ``provider``'s references ``refs`` already answer for a message (of the
    clinics in scope): reference -> message id. A reference is one message's: a lookup that
    matches by content (Twilio's list) must not hand a twin's reference to another message."""
    refs = {r for r in refs if r}
    if not refs:
        return {}
    return dict(
        db.session.execute(
            sa.select(Message.provider_ref, Message.id).where(
                Message.provider == provider, among(Message.provider_ref, refs)
            )
        ).all()
    )


def apply_receipts(provider: str, reports: list[Receipt]) -> None:
    """Record the delivery reports of one webhook call, as :func:`apply_receipt` does each,
    in bulk: their references locked at once (in the one order workers lock them in), then
    the reports of delivery (nearly all of them) applied to their sent messages in one
    UPDATE that finds, checks and changes them, and one insert of history steps
    (:func:`lifecycle.delivered_by_reference`). The others (not delivered, a message not
    sent yet or already final, a reference reported twice in the call, a report by our own
    id) take the one-by-one path, in the call's order."""
    reports = [r for r in reports if r.status in RECEIPT_STATUSES]
    if not reports:
        return
    _lock((provider, r.provider_ref) for r in reports)
    if db.session.get_bind().dialect.name != "postgresql":  # SQLite: one by one
        for report in reports:
            _apply(provider, report)
        return
    times = Counter(r.provider_ref for r in reports)
    plain = [
        r
        for r in reports
        if not r.message_id
        and r.provider_ref
        and times[r.provider_ref] == 1
        and r.status == "delivered"
    ]
    done = lifecycle.delivered_by_reference(
        provider, [(r.provider_ref, r.at, r.error) for r in plain]
    )
    for report in reports:
        if report.provider_ref not in done:
            _apply(provider, report)


# --- the reports of concurrent webhook calls, in one transaction ---------------------------

# Why together. A provider that reports each message in a call of its own (Twilio: one call a
# message and status) would cost a transaction a call: a connection taken, the clinic's scope
# set, the locks, the UPDATE, the history insert, the commit, for one report. A process
# instead applies the reports of the calls waiting in one transaction per clinic and
# provider (core.group_commit). A transaction costs the process about 2 ms of CPU whatever it
# holds, and calls arrive a few per millisecond: alone they went 3 to 6 together, so while
# they come in a burst the first call of a transaction waits 5 ms for others to join it.
GATHER_SECONDS = 0.005
WAIT_SECONDS = 30.0  # how long a call waits for its commit (then 503: the provider retries)


def _apply_group(group: tuple[uuid.UUID, str], calls: list[list[Receipt]]) -> list[None]:
    tenant_id, provider = group
    with tenant_scope(tenant_id):
        apply_receipts(provider, [report for reports in calls for report in reports])
        db.session.commit()  # the lifecycle announces each change once this commits
    return [None] * len(calls)


_applied_together = GroupCommit("relais-receipts", _apply_group, gather=GATHER_SECONDS)


def apply_together(provider: str, reports: list[Receipt], timeout: float = WAIT_SECONDS) -> None:
    """Record a webhook call's delivery reports in the clinic in scope, as
    :func:`apply_receipts` does, in one transaction with the reports of the calls this
    process receives meanwhile (see the note above); return once that transaction committed.
    Intermediate reports (accepted, sent to the handset...) change nothing: no transaction.

    :raises TimeoutError: when no commit came within ``timeout`` seconds (the reports may
        still be applied: applying them again changes nothing).
    :raises Exception: what applying this call's reports alone raised.
    """
    reports = [r for r in reports if r.status in RECEIPT_STATUSES]
    if reports:
        _applied_together((current_tenant_id(), provider), reports, timeout)


def apply_receipt(provider: str, receipt: Receipt) -> Message | None:
    """Record a delivery report in the current clinic; the same report twice changes
    nothing. A report for a send not recorded yet is kept until it is: the transaction
    that records the send applies it (:func:`apply_early_receipts`), whatever the order in
    which the two came, and the sweeper any left over (:func:`apply_leftovers`)."""
    if receipt.status not in RECEIPT_STATUSES:
        return None  # intermediate reports (queued at the operator, sent to the handset...)
    _lock([(provider, receipt.provider_ref)])
    return _apply(provider, receipt)


def _apply(provider: str, receipt: Receipt) -> Message | None:
    """:func:`apply_receipt`, its reference's lock held."""
    status = RECEIPT_STATUSES[receipt.status]
    where = (
        (Message.id == receipt.message_id)
        if receipt.message_id
        else sa.and_(Message.provider == provider, Message.provider_ref == receipt.provider_ref)
    )
    # Read again even when this session holds the message: what counts is the last commit
    # (a webhook may have applied a report since a worker loaded it).
    message = db.session.scalar(
        sa.select(Message).where(where).execution_options(populate_existing=True)
    )
    if message is None or message.status in NOT_SENT_YET:
        if receipt.provider_ref:
            db.session.add(
                EarlyReceipt(
                    provider=provider,
                    provider_ref=receipt.provider_ref,
                    status=receipt.status,
                    at=receipt.at,
                    error=receipt.error,
                )
            )
        return None
    return _report(provider, message, status, receipt)


def apply_early_receipts(messages: list[Message]) -> None:
    """Apply reports that came before the sends of ``messages`` were recorded.

    Call it in the transaction that records those sends, before it commits: it locks their
    references first, so that a report arriving meanwhile waits for that commit and then
    finds the message sent (see the lock's note above). Applied early receipts are deleted.
    """
    keys = {(m.tenant_id, m.provider, m.provider_ref) for m in messages if m.provider_ref}
    if not keys:
        return
    _lock((provider, ref) for _, provider, ref in keys)
    _apply_kept(keys)


def apply_leftovers(limit: int) -> int:
    """The sweeper's step: apply the early receipts whose send is recorded by now, and
    delete them (a worker that died between recording a send and applying its early
    receipts; SQLite, which takes no advisory lock). Across clinics (system scope); at most
    ``limit`` references a pass. Early receipts whose message is not sent yet stay; those
    whose message never comes go with the retention purge. Returns how many were applied or
    found moot (the message already final). The caller commits."""
    keys = {
        tuple(row)
        for row in db.session.execute(
            sa.select(EarlyReceipt.tenant_id, EarlyReceipt.provider, EarlyReceipt.provider_ref)
            .join(
                Message,
                sa.and_(
                    Message.tenant_id == EarlyReceipt.tenant_id,
                    Message.provider == EarlyReceipt.provider,
                    Message.provider_ref == EarlyReceipt.provider_ref,
                ),
            )
            .where(Message.status.not_in(NOT_SENT_YET))
            .distinct()
            .limit(limit)
        )
    }
    if not keys:
        return 0
    _lock((provider, ref) for _, provider, ref in keys)
    return _apply_kept(keys)


def _apply_kept(keys: set[tuple]) -> int:
    """Apply the early receipts of ``keys`` ((tenant id, provider, reference), their locks
    held) whose message is sent by now, oldest first; delete them. Returns how many."""
    early = db.session.scalars(
        sa.select(EarlyReceipt)
        .where(among(EarlyReceipt.provider_ref, {ref for _, _, ref in keys}))
        .order_by(EarlyReceipt.at, EarlyReceipt.id)
    ).all()
    early = [r for r in early if (r.tenant_id, r.provider, r.provider_ref) in keys]
    done = _delivered_kept(early)
    for row in early:
        if row.id in done:
            continue
        message = db.session.scalar(
            sa.select(Message)
            .where(
                Message.tenant_id == row.tenant_id,
                Message.provider == row.provider,
                Message.provider_ref == row.provider_ref,
            )
            .execution_options(populate_existing=True)
        )
        if message is None or message.status in NOT_SENT_YET:
            continue  # its send is not recorded yet: kept for when it is
        report = Receipt(
            status=row.status, at=row.at, provider_ref=row.provider_ref, error=row.error
        )
        _report(row.provider, message, RECEIPT_STATUSES[row.status], report)
        done.add(row.id)
    if done:
        db.session.execute(
            sa.delete(EarlyReceipt)
            .where(EarlyReceipt.id.in_(done))
            .execution_options(synchronize_session=False)
        )
    return len(done)


def _delivered_kept(early: list[EarlyReceipt]) -> set:
    """Apply in bulk the kept reports of delivery that are alone for their reference
    (nearly all), to messages sent by now (:func:`lifecycle.delivered_by_reference`, per
    clinic and provider); the ids of the rows applied. PostgreSQL only; elsewhere none."""
    if db.session.get_bind().dialect.name != "postgresql":
        return set()
    times = Counter((r.tenant_id, r.provider, r.provider_ref) for r in early)
    groups: dict[tuple, list[EarlyReceipt]] = defaultdict(list)
    for row in early:
        if row.status == "delivered" and times[row.tenant_id, row.provider, row.provider_ref] == 1:
            groups[row.tenant_id, row.provider].append(row)
    done = set()
    for (tenant_id, provider), rows in groups.items():
        reports = [(r.provider_ref, r.at, r.error) for r in rows]
        delivered = lifecycle.delivered_by_reference(provider, reports, tenant_id)
        done |= {r.id for r in rows if r.provider_ref in delivered}
    return done


def _report(provider: str, message: Message, status: MessageStatus, receipt: Receipt):
    """Apply a report to a message whose send is recorded; the message when it changed."""
    if message.status not in (MessageStatus.SENT, MessageStatus.UNDELIVERED):
        return None  # already final (delivered, failed...): nothing changes
    if message.status == status:
        return None
    # Undelivered: on its way by the next channel of its plan when there is one.
    why = f"{provider}: {receipt.error or 'not delivered'}"
    lifecycle.report(message, status, receipt.at, receipt.error, why)
    return message


def _lock(keys) -> None:
    """Take the advisory locks of (provider, reference) pairs until the transaction ends,
    in one global order (PostgreSQL; SQLite writes one transaction at a time)."""
    names = sorted({f"receipt:{provider}:{ref}" for provider, ref in keys if ref})
    if names and db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_LOCKS, {"keys": names})


def route_inbound(provider: str, channel: str, country_code: str, reply: Inbound):
    """The clinic and patient a reply comes from: the clinic that last wrote to that number."""
    row = db.session.execute(
        sa.select(Message.tenant_id, Patient.id)
        .join(
            Patient,
            sa.and_(Patient.tenant_id == Message.tenant_id, Patient.id == Message.patient_id),
        )
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(
            Patient.phone == reply.sender,
            Tenant.country_code == country_code,
            Message.sent_at.is_not(None),
        )
        .order_by(Message.sent_at.desc())
        .limit(1)
    ).first()
    return (db.session.get(Tenant, row[0]), row[1]) if row else (None, None)


def inbound_seen(provider: str, provider_ref: str | None) -> bool:
    """Whether a reply with this provider reference is stored already, in any clinic (call
    it in the system scope): a provider's retry, or a replayed request, is not a new reply."""
    if not provider_ref:
        return False
    return (
        db.session.scalar(
            sa.select(sa.literal(True)).where(
                InboundMessage.provider == provider, InboundMessage.provider_ref == provider_ref
            )
        )
        is not None
    )


def keep_inbound(
    tenant, patient_id, provider: str, channel: str, reply: Inbound
) -> InboundMessage | None:
    """Store a reply and hand it to the clinic's features (first handler wins).

    Idempotent by the provider's reference: a reply stored already (a provider's retry, a
    replayed request) is neither stored again nor handed to features again, even when two
    copies race (one INSERT ... ON CONFLICT DO NOTHING decides). Returns the stored row, or
    None for a copy.
    """
    table = InboundMessage.__table__
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    row_id = db.session.scalar(
        dialect.insert(table)
        .values(
            tenant_id=tenant.id,
            id=new_id(),
            at=reply.at,
            channel=channel,
            provider=provider,
            provider_ref=reply.provider_ref,
            sender=reply.sender,
            patient_id=patient_id,
            text=reply.text,
        )
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )
    if row_id is None:
        return None
    patient = db.session.get(Patient, (tenant.id, patient_id)) if patient_id else None
    handled = hooks_for(tenant).relais_handle_inbound(
        tenant=tenant, patient=patient, channel=channel, text=reply.text
    )
    if handled:
        db.session.execute(
            sa.update(table)
            .where(table.c.tenant_id == tenant.id, table.c.id == row_id)
            .values(handled_by=str(handled)[:200])
        )
    hooks_for(tenant).relais_inbound_received(
        tenant=tenant,
        reply_id=row_id,
        patient_id=patient_id,
        channel=channel,
        at=reply.at,
        handled_by=str(handled)[:200] if handled else None,
    )
    return db.session.get(InboundMessage, (tenant.id, row_id))
