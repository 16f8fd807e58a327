"""Delivery receipts and patient replies, as providers' webhooks bring them."""

import sqlalchemy as sa

from core.clinic.models import Patient
from core.db import db
from core.delivery import lifecycle
from core.delivery.models import EarlyReceipt, InboundMessage, Message, MessageStatus
from core.delivery.providers import Inbound, Receipt
from core.plugins import hooks_for
from tenants.models import Tenant

RECEIPT_STATUSES = {"delivered": MessageStatus.DELIVERED, "undelivered": MessageStatus.UNDELIVERED}


def apply_receipt(provider: str, receipt: Receipt) -> Message | None:
    """Record a delivery report in the current clinic; the same report twice changes
    nothing. A report for a send not recorded yet is kept until it is."""
    status = RECEIPT_STATUSES.get(receipt.status)
    if status is None:
        return None  # intermediate reports (queued at the operator, sent to the handset...)
    where = (
        (Message.id == receipt.message_id)
        if receipt.message_id
        else sa.and_(Message.provider == provider, Message.provider_ref == receipt.provider_ref)
    )
    message = db.session.scalar(sa.select(Message).where(where))
    if message is None or message.status in (MessageStatus.SENDING, MessageStatus.PENDING):
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
    if message.status not in (MessageStatus.SENT, MessageStatus.UNDELIVERED):
        return None  # already final (delivered, failed...): nothing changes
    if message.status == status:
        return None
    # Undelivered: on its way by the next channel of its plan when there is one.
    why = f"{provider}: {receipt.error or 'not delivered'}"
    lifecycle.report(message, status, receipt.at, receipt.error, why)
    return message


def apply_early_receipts(messages: list[Message]) -> None:
    """Apply reports that came before the sends of ``messages`` were recorded (one query)."""
    refs = {(m.provider, m.provider_ref): m for m in messages if m.provider_ref}
    if not refs:
        return
    with db.session.no_autoflush:
        early = db.session.scalars(
            sa.select(EarlyReceipt).where(EarlyReceipt.provider_ref.in_([ref for _, ref in refs]))
        ).all()
    for row in early:
        if (row.provider, row.provider_ref) in refs:
            apply_receipt(
                row.provider,
                Receipt(
                    status=row.status, at=row.at, provider_ref=row.provider_ref, error=row.error
                ),
            )
            db.session.delete(row)


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


def keep_inbound(tenant, patient_id, provider: str, channel: str, reply: Inbound) -> InboundMessage:
    """Store a reply and hand it to the clinic's features (first handler wins)."""
    patient = db.session.get(Patient, (tenant.id, patient_id)) if patient_id else None
    handled = hooks_for(tenant).relais_handle_inbound(
        tenant=tenant, patient=patient, channel=channel, text=reply.text
    )
    row = InboundMessage(
        tenant_id=tenant.id,
        at=reply.at,
        channel=channel,
        provider=provider,
        provider_ref=reply.provider_ref,
        sender=reply.sender,
        patient_id=patient_id,
        text=reply.text,
        handled_by=str(handled)[:200] if handled else None,
    )
    db.session.add(row)
    return row
