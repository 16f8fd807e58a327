"""The clinic's message log: what left for which patient, by which channel, how it went.

The list never shows content; opening one message shows it, and that read of health data
is written to the audit trail (``message.read``), as is every search (``message.search``,
it shows patients' names).
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask_babel import gettext as _

from core.clinic import audit, patients
from core.clinic.models import Patient
from core.db import db
from core.delivery.expressions import current_channel
from core.delivery.models import Attempt, Message, MessageEvent, MessageStatus
from core.delivery.outbox import CHANNELS, PURPOSES
from core.delivery.presenters import find_message
from core.errors import ValidationError
from core.i18n import format_datetime, render_phrases, stored_text

PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    """What the log is narrowed to; empty strings mean "any"."""

    status: str = ""
    channel: str = ""
    purpose: str = ""
    patient: str = ""  # a patient's id, or words of their name, phone or e-mail

    def as_args(self) -> dict[str, str]:
        """The non-empty filters, as query-string arguments (for the pages' links)."""
        return {k: v for k, v in vars(self).items() if v}


def parse_filters(args: Mapping[str, str]) -> Filters:
    """The filters of a request. :raises ValidationError: naming the field with a bad value."""
    filters = Filters(
        **{name: (args.get(name) or "").strip() for name in ("status", "channel", "purpose")},
        patient=(args.get("patient") or "").strip()[:200],
    )
    for name, allowed in (
        ("status", [s.value for s in MessageStatus]),
        ("channel", CHANNELS),
        ("purpose", PURPOSES),
    ):
        value = getattr(filters, name)
        if value and value not in allowed:
            raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(allowed)), name)
    return filters


def search_messages(
    filters: Filters, page: int = 1
) -> tuple[list[tuple[Message, Patient | None]], int]:
    """The clinic's messages matching ``filters``, newest first, with their patient (None
    for a code sent to a number no record holds); and how many match in all."""
    stmt = (
        sa.select(Message, Patient)
        .outerjoin(
            Patient,
            sa.and_(Patient.tenant_id == Message.tenant_id, Patient.id == Message.patient_id),
        )
        .where(*_conditions(filters))
    )
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(stmt.with_only_columns(Message.id).subquery())
    )
    rows = db.session.execute(
        stmt.order_by(Message.created_at.desc(), Message.id.desc())
        .limit(PAGE_SIZE)
        .offset((max(page, 1) - 1) * PAGE_SIZE)
    ).all()
    audit.record("message.search")
    return [(m, p) for m, p in rows], total


def read_message(message_id: uuid.UUID) -> tuple[Message, Patient | None]:
    """A message of the clinic with its patient (None for a code sent to a number no
    record holds), its read audited. :raises NotFound."""
    message = find_message(message_id)
    audit.record("message.read", message.id)
    if message.patient_id is None:
        return message, None
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == message.patient_id))
    return message, patient


# What went wrong: the statuses of messages that will not reach their patient.
TROUBLES = (
    MessageStatus.FAILED,
    MessageStatus.UNDELIVERED,
    MessageStatus.EXPIRED,
    MessageStatus.DENIED,
)


def troubles(since: datetime, limit: int = 5) -> tuple[list[tuple[Message, str]], int]:
    """The clinic's messages that failed, went undelivered, expired or were refused by the
    rules since ``since`` (latest first), each with why in plain words; and how many in all.
    Not audited: no patient is named (the page links to each message)."""
    conditions = [
        Message.status.in_(TROUBLES),
        sa.func.coalesce(Message.finished_at, Message.created_at) >= since,
    ]
    total = db.session.scalar(sa.select(sa.func.count(Message.id)).where(*conditions)) or 0
    rows = db.session.scalars(
        sa.select(Message)
        .where(*conditions)
        .order_by(sa.func.coalesce(Message.finished_at, Message.created_at).desc(), Message.id)
        .limit(limit)
    ).all()
    return [(message, why(message)) for message in rows], total


def why(message: Message) -> str:
    """Why a message did not reach its patient: the rules' verdict, else the provider's last
    answer, else its status."""
    if message.status == MessageStatus.DENIED:
        return verdict_sentence(message)
    error = db.session.scalar(
        sa.select(Attempt.error)
        .where(Attempt.message_id == message.id, Attempt.error.is_not(None))
        .order_by(Attempt.at.desc(), Attempt.id.desc())
        .limit(1)
    )
    label = status_labels()[message.status]
    return f"{label}: {error}" if error else label


def masked(phone: str | None) -> str:
    """A phone number as pages show it when the whole of it is not for them: ``•• •• 78``
    (a code's number, to staff and to whoever asked for the code)."""
    return f"•• •• {(phone or '')[-2:]}"


def history(message: Message) -> tuple[list[MessageEvent], list[Attempt]]:
    """Its status changes and provider attempts, oldest first."""
    events = db.session.scalars(
        sa.select(MessageEvent)
        .where(MessageEvent.message_id == message.id)
        .order_by(MessageEvent.at, MessageEvent.id)
    ).all()
    attempts = db.session.scalars(
        sa.select(Attempt).where(Attempt.message_id == message.id).order_by(Attempt.at, Attempt.id)
    ).all()
    return list(events), list(attempts)


def _conditions(filters: Filters) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if filters.status:
        conditions.append(Message.status == MessageStatus(filters.status))
    if filters.channel:
        conditions.append(current_channel() == filters.channel)
    if filters.purpose:
        conditions.append(Message.purpose == filters.purpose)
    if filters.patient:
        try:
            conditions.append(Message.patient_id == uuid.UUID(filters.patient))
        except ValueError:
            conditions += patients.matching(filters.patient)
    return conditions


# --- what the pages call things ---------------------------------------------------------------


def status_labels() -> dict[str, str]:
    return {
        MessageStatus.SCHEDULED: _("Scheduled"),
        MessageStatus.PENDING: _("Waiting to be sent"),
        MessageStatus.SENDING: _("Sending"),
        MessageStatus.SENT: _("Sent"),
        MessageStatus.DELIVERED: _("Delivered"),
        MessageStatus.UNDELIVERED: _("Not delivered"),
        MessageStatus.FAILED: _("Failed"),
        MessageStatus.EXPIRED: _("Expired"),
        MessageStatus.DENIED: _("Refused by the rules"),
        MessageStatus.CANCELLED: _("Cancelled"),
    }


def event_labels() -> dict[str, str]:
    """Statuses, and the steps a message's history records between them."""
    return {
        **status_labels(),
        "retry": _("Will be retried"),
        "failover": _("Next provider"),
        "fallback": _("Next channel"),
        "erased": _("Erased (retention)"),
    }


def verdict_labels() -> dict[str, str]:
    return {
        "allow": _("Allowed"),
        "defer": _("Deferred"),
        "deny": _("Refused"),
        "amend": _("Amended"),
    }


def verdict_sentence(message) -> str:
    """What the country's rules did to a message, in plain words, e.g. "Deferred to Monday
    30 March 08:00: quiet hours in France" (in the clinic's time zone)."""
    if message.verdict == "defer" and message.verdict_until:
        when = format_datetime(message.verdict_until, weekday=True)
        label = _("Deferred to %(when)s", when=when)
    else:
        label = verdict_labels().get(message.verdict, message.verdict)
    reason = verdict_reason(message)
    return _("%(verdict)s: %(reason)s", verdict=label, reason=reason) if reason else label


def event_detail(message, event) -> str:
    """A step's detail in the reader's language: the verdict's reasons for the first step, a
    fixed text (marked with ``N_``) translated, a provider's own words as they came."""
    if not event.detail:
        return ""
    if event.detail == message.verdict_reason and message.verdict_phrases:
        return render_phrases(message.verdict_phrases)
    return stored_text(event.detail)


def verdict_reason(message) -> str | None:
    """Why the rules said so, in the reader's language (the English text of the messages
    judged before reasons were stored as codes, or of a plugin's plain-text reason)."""
    if message.verdict_phrases:
        return render_phrases(message.verdict_phrases)
    return message.verdict_reason


def channel_labels() -> dict[str, str]:
    return {"push": _("Push"), "email": _("E-mail"), "sms": _("SMS"), "voice": _("Voice")}


def purpose_labels() -> dict[str, str]:
    return {
        "otp": _("Sign-up or login code"),
        "transactional": _("Transactional"),
        "reminder": _("Reminder"),
        "messaging": _("Patient messaging"),
        "campaign": _("Campaign"),
    }


def outcome_labels() -> dict[str, str]:
    return {
        "accepted": _("Accepted"),
        "temporary": _("Temporary failure"),
        "permanent": _("Refused"),
        "unreachable": _("Unreachable on this channel"),
    }
