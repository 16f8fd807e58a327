"""Reminders: scheduled from each appointment change, answered by reply or by link.

A reminder is an outbox message whose ``not_before`` is its time and whose ``expires_at`` is
the appointment's start: the sweeper sends it when it is due (no job waits in Redis), and it
never leaves after the start. The ``reminders`` table says which messages are whose.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _

from core.plugin_api import (
    N_,
    Message,
    MessageStatus,
    Patient,
    ValidationError,
    best_channels,
    cancel_message,
    db,
    insert_many,
    plugin_setting,
    send,
    send_many,
    utcnow,
)
from plugins.features.appointments import Appointment, AppointmentStatus, cancel, set_status
from plugins.features.reminders import invitation, links, texts
from plugins.features.reminders.models import Reminder
from plugins.features.reminders.schedule import parse_by_type, parse_offsets

PLUGIN = "reminders"
OPEN = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
WAITING = (MessageStatus.SCHEDULED, MessageStatus.PENDING)
CONFIRM_WORDS = frozenset({"OUI", "YES", "JA", "SI"})
CANCEL_WORDS = frozenset({"NON", "NO", "NEIN", "NEE"})


# --- what the clinic chose --------------------------------------------------------------------


def offsets_for(tenant, kind: str | None) -> list[int]:
    """The minutes before an appointment of type ``kind`` that its reminders go."""
    by_type = parse_by_type(plugin_setting(tenant, PLUGIN, "schedule_by_type") or "")
    if kind in by_type:
        return by_type[kind]
    return parse_offsets(plugin_setting(tenant, PLUGIN, "schedule"))


def template_text(tenant, language: str) -> str:
    return (
        plugin_setting(tenant, PLUGIN, f"template_{language}") or texts.DEFAULT_TEMPLATES[language]
    )


def address_of(tenant, appointment: Appointment) -> str:
    return appointment.location or plugin_setting(tenant, "appointments", "address") or ""


def variables_for(tenant, appointment: Appointment, patient: Patient, language: str) -> dict:
    return texts.variables(
        tenant,
        language,
        patient.first_name,
        appointment.practitioner.name if appointment.practitioner else "",
        appointment.starts_at,
        address_of(tenant, appointment),
        links.link(tenant, appointment.id),
    )


# --- the hook ---------------------------------------------------------------------------------


# Why reminders were dropped, as a message's history keeps it (in English, shown translated).
CLOSED_BECAUSE = {
    "done": N_("the appointment is done"),
    "no_show": N_("the patient did not come"),
    "cancelled": N_("the appointment was cancelled"),
}


def on_change(tenant, appointment: Appointment, change: str) -> None:
    """What an appointment's change does to its reminders (``relais_appointment_changed``)."""
    if change == "created":
        schedule(tenant, appointment)
        send_invitation(tenant, appointment)
    elif change == "moved":
        drop_pending(tenant, appointment, N_("the appointment moved"))
        if appointment.status in OPEN:
            schedule(tenant, appointment)
            send_invitation(tenant, appointment)
    elif change == "cancelled":
        drop_pending(tenant, appointment, N_("the appointment was cancelled"))
        if plugin_setting(tenant, PLUGIN, "notify_cancellation"):
            tell_cancelled(tenant, appointment)
    elif change == "status":
        if appointment.status in OPEN:
            if not pending(appointment):  # booked again after a cancellation
                schedule(tenant, appointment)
        else:
            drop_pending(tenant, appointment, CLOSED_BECAUSE.get(appointment.status.value, ""))


def schedule(tenant, appointment: Appointment) -> list[Message]:
    """Put the appointment's reminders in the outbox, one per offset still to come.

    :raises ValidationError: when a reminder cannot be written (the clinic's template).
    """
    return schedule_many(tenant, [appointment])


def schedule_many(tenant, appointments: list[Appointment]) -> list[Message]:
    """Put the reminders of many appointments in the outbox at once (an import, a practice
    software's sync): judged and written through the outbox's bulk path (``send_many``:
    consents and settings read once, the messages in a few statements), then which
    appointment each belongs to, in one more. Returns the messages written.

    :raises ValidationError: the first reminder that cannot be written (the clinic's
        template); the caller's transaction is then to be rolled back.
    """
    now = utcnow()
    drafts, owners = [], []
    for appointment in appointments:
        for minutes, draft in _drafts(tenant, appointment, now):
            drafts.append(draft)
            owners.append((appointment.id, minutes))
    results = send_many(tenant, drafts)
    refused = next((r for r in results if isinstance(r, ValidationError)), None)
    if refused is not None:
        raise refused
    insert_many(  # one statement, where an executemany is a round of the server's per row
        Reminder.__table__,
        [
            {
                "tenant_id": tenant.id,
                "message_id": message.id,
                "appointment_id": appointment_id,
                "minutes_before": minutes,
            }
            for message, (appointment_id, minutes) in zip(results, owners, strict=True)
        ],
    )
    return results


def _drafts(tenant, appointment: Appointment, now: datetime) -> list[tuple[int, dict]]:
    """The appointment's reminders still to come, as ``send_many`` drafts with their offset."""
    if appointment.status not in OPEN:
        return []
    patient = appointment.patient
    channels = best_channels(tenant, patient)
    if not channels:
        return []  # no way to reach them: staff see it on the patient's page
    language = texts.language_of(patient)
    template = texts.message_template(template_text(tenant, language), language)
    values = variables_for(tenant, appointment, patient, language)
    found = []
    for minutes in offsets_for(tenant, appointment.type):
        at = appointment.starts_at - timedelta(minutes=minutes)
        if at <= now:
            continue  # never a reminder for a time already past
        draft = {
            "patient": patient,
            "purpose": "reminder",
            "template": template,
            "variables": values,
            "channels": channels,
            "not_before": at,
            "expires_at": appointment.starts_at,
        }
        found.append((minutes, draft))
    return found


def pending(appointment: Appointment) -> list[Message]:
    """The appointment's reminders that have not left yet."""
    return list(
        db.session.scalars(
            sa.select(Message)
            .join(Reminder, Reminder.message_id == Message.id)
            .where(Reminder.appointment_id == appointment.id, Message.status.in_(WAITING))
            .order_by(Message.not_before)
        )
    )


def drop_pending(tenant, appointment: Appointment, why: str) -> int:
    """Cancel the reminders that have not left; returns how many."""
    return sum(cancel_message(message, why) for message in pending(appointment))


def tell_cancelled(tenant, appointment: Appointment) -> Message | None:
    """Tell the patient their appointment to come is cancelled (by their best channel; an
    e-mail carries the calendar's cancellation)."""
    if appointment.starts_at <= utcnow():
        return None
    patient = appointment.patient
    channels = best_channels(tenant, patient)
    if not channels:
        return None
    language = texts.language_of(patient)
    moment = texts.when(tenant, appointment.starts_at, language)
    with force_locale(language):
        text = _(
            "%(clinic)s: your appointment on %(date)s at %(time)s is cancelled.",
            clinic=tenant.name,
            **moment,
        )
        subject = _("Appointment cancelled: %(date)s at %(time)s", **moment)
        summary = _("Appointment at %(clinic)s", clinic=tenant.name)
    attachments = None
    if patient.email:
        data = invitation.ics(
            tenant, appointment, summary, address_of(tenant, appointment), cancel=True
        )
        attachments = [(invitation.FILENAME, invitation.MIME_TYPE, data)]
    # The texts go in as variables, never as templates: a clinic's name is not Jinja.
    return send(
        tenant,
        patient,
        "transactional",
        {"text": "{{ text }}", "subject": "{{ subject }}"},
        {"text": text, "subject": subject},
        channels,
        attachments=attachments,
    )


def send_invitation(tenant, appointment: Appointment) -> Message | None:
    """E-mail the patient the appointment with its .ics invitation (if they have e-mail)."""
    patient = appointment.patient
    if not patient.email or appointment.starts_at <= utcnow():
        return None
    language = texts.language_of(patient)
    moment = texts.when(tenant, appointment.starts_at, language)
    practitioner = appointment.practitioner.name if appointment.practitioner else ""
    address = address_of(tenant, appointment)
    with force_locale(language):
        subject = _("Your appointment on %(date)s at %(time)s", **moment)
        text = _(
            "Hello %(patient)s, your appointment with %(practitioner)s at %(clinic)s is on "
            "%(date)s at %(time)s. Add it to your calendar with the attached file.",
            patient=patient.first_name,
            practitioner=practitioner,
            clinic=tenant.name,
            **moment,
        )
        if address:
            text += "\n" + _("Address: %(address)s", address=address)
        text += "\n" + _("Confirm or cancel: %(link)s", link=links.link(tenant, appointment.id))
        summary = _("Appointment at %(clinic)s", clinic=tenant.name)
    data = invitation.ics(tenant, appointment, summary, address)
    return send(
        tenant,
        patient,
        "transactional",
        {"text": "{{ text }}", "subject": "{{ subject }}"},
        {"text": text, "subject": subject},
        ["email"],
        expires_at=appointment.starts_at,
        attachments=[(invitation.FILENAME, invitation.MIME_TYPE, data)],
    )


# --- the patient's answer ---------------------------------------------------------------------


def next_reminded(patient: Patient, now: datetime | None = None) -> Appointment | None:
    """The patient's next appointment to come, booked or confirmed, of which a reminder has
    already left: the one a reply answers."""
    reminded = (
        sa.select(Reminder.appointment_id)
        .join(Message, Message.id == Reminder.message_id)
        .where(Message.sent_at.is_not(None))
    )
    return db.session.scalar(
        sa.select(Appointment)
        .where(
            Appointment.patient_id == patient.id,
            Appointment.status.in_(OPEN),
            Appointment.starts_at > (now or utcnow()),
            Appointment.id.in_(reminded),
        )
        .order_by(Appointment.starts_at)
        .limit(1)
    )


def answer(tenant, appointment: Appointment, confirm: bool) -> Appointment:
    """Confirm or cancel an appointment as its patient asked."""
    if confirm:
        if appointment.status != AppointmentStatus.CONFIRMED:
            set_status(tenant, appointment, AppointmentStatus.CONFIRMED.value)
        return appointment
    return cancel(tenant, appointment)


def handle_reply(tenant, patient: Patient | None, word: str) -> str | None:
    """A reply OUI/NON, YES/NO, JA/NEIN, SI/NO, JA/NEE to a reminder; None for other words."""
    if patient is None or word not in CONFIRM_WORDS | CANCEL_WORDS:
        return None
    appointment = next_reminded(patient)
    if appointment is None:
        return None
    confirm = word in CONFIRM_WORDS
    answer(tenant, appointment, confirm)
    return f"appointment {'confirmed' if confirm else 'cancelled'} ({word})"
