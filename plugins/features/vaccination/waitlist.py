"""The waitlist: when a centre is full, patients wait in line; a freed slot is offered to
the first one, held for them :data:`HOLD` (its place and dose taken on their behalf), with a
message and a link. An offer that runs out goes to the next patient.

Holds that ran out are released by :func:`release_expired`, which the booking routes call
before they book (and the ``relais vaccination release-holds`` command, for a timer).
"""

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _

from core.plugin_api import (
    Conflict,
    NotFound,
    Patient,
    best_channels,
    db,
    external_url,
    format_date,
    format_time,
    send,
    utcnow,
)
from plugins.features.vaccination import booking, slots
from plugins.features.vaccination.models import Booking, WaitlistEntry, WaitStatus

HOLD = timedelta(minutes=10)
OPEN = (WaitStatus.WAITING, WaitStatus.OFFERED)


def join(tenant, patient: Patient, centre_id, vaccine_id) -> WaitlistEntry:
    """Put the patient in line for a centre and vaccine (once: joining again answers the
    same entry). :raises ValidationError: naming the field, for an ineligible patient."""
    where = booking.centre(centre_id)
    shot = booking.vaccine(vaccine_id)
    booking.check_eligible(patient, where, shot, slots.local_day(tenant, utcnow()))
    entry = db.session.scalar(
        sa.select(WaitlistEntry).where(
            WaitlistEntry.patient_id == patient.id,
            WaitlistEntry.centre_id == where.id,
            WaitlistEntry.vaccine_id == shot.id,
            WaitlistEntry.status.in_(OPEN),
        )
    )
    if entry is None:
        entry = WaitlistEntry(patient_id=patient.id, centre_id=where.id, vaccine_id=shot.id)
        db.session.add(entry)
        db.session.flush()
    return entry


def offer(tenant, centre_id: uuid.UUID, vaccine_id: uuid.UUID, at: datetime) -> bool:
    """Offer the place just freed at ``at`` to the first patient waiting (skipping lines
    another transaction is offering), in the caller's transaction. Whether someone got it."""
    if at <= utcnow() + HOLD:
        return False  # too late to be of use to anyone
    entry = db.session.scalar(
        sa.select(WaitlistEntry)
        .where(
            WaitlistEntry.centre_id == centre_id,
            WaitlistEntry.vaccine_id == vaccine_id,
            WaitlistEntry.status == WaitStatus.WAITING,
        )
        .order_by(WaitlistEntry.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if entry is None:
        return False
    where, shot = booking.centre(centre_id), booking.vaccine(vaccine_id)
    try:
        with db.session.begin_nested():
            booking.take(tenant, where, shot, at, "first")
    except booking.Full:
        return False
    entry.status, entry.slot_at, entry.held_until = WaitStatus.OFFERED, at, utcnow() + HOLD
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == entry.patient_id))
    channels = best_channels(tenant, patient)
    if channels:
        with force_locale(patient.language):
            template = _(
                "A vaccination slot is free at {{ centre }} on {{ day }} at {{ time }}. It is "
                "held for you for 10 minutes: {{ link }}"
            )
            variables = {
                "centre": where.name,
                "day": format_date(at, weekday=True),
                "time": format_time(at),
                "link": external_url("vaccination_patient.waitlist_offer", entry_id=entry.id),
            }
        send(
            tenant,
            patient,
            "transactional",
            template,
            variables,
            channels,
            expires_at=entry.held_until,
        )
    return True


def offer_freed(tenant, freed: list[Booking]) -> int:
    """Offer the first place a cancellation freed to the first patient waiting; the later
    doses' places go back to everyone (that patient's own next dose among them)."""
    if not freed:
        return 0
    first = min(freed, key=lambda b: b.starts_at)
    return int(offer(tenant, first.centre_id, first.vaccine_id, first.starts_at))


def release_expired(tenant) -> int:
    """End the offers that ran out: their places go to the next in line, or back to all."""
    ended = db.session.execute(
        sa.update(WaitlistEntry)
        .where(WaitlistEntry.status == WaitStatus.OFFERED, WaitlistEntry.held_until < utcnow())
        .values(status=WaitStatus.EXPIRED)
        .returning(WaitlistEntry.centre_id, WaitlistEntry.vaccine_id, WaitlistEntry.slot_at)
        .execution_options(synchronize_session=False)
    ).all()
    for centre_id, vaccine_id, at in ended:
        booking.give_back(tenant, centre_id, vaccine_id, at)
        offer(tenant, centre_id, vaccine_id, at)
    return len(ended)


def offered(patient: Patient, entry_id: uuid.UUID) -> WaitlistEntry:
    """The patient's offer still held. :raises NotFound: or :class:`Conflict` when it ran
    out."""
    entry = db.session.scalar(
        sa.select(WaitlistEntry)
        .where(WaitlistEntry.id == entry_id, WaitlistEntry.patient_id == patient.id)
        .with_for_update()
    )
    if entry is None:
        raise NotFound(_("No such offer."))
    if entry.status != WaitStatus.OFFERED or entry.held_until <= utcnow():
        raise Conflict(_("This offer has run out: join the waitlist again."), "first")
    return entry


def accept(tenant, patient: Patient, entry_id: uuid.UUID, second: datetime | None) -> list:
    """Book the slot held for the patient, with their next dose at ``second``."""
    entry = offered(patient, entry_id)
    made = booking.book(
        tenant, patient, entry.centre_id, entry.vaccine_id, entry.slot_at, second, held=True
    )
    entry.status = WaitStatus.BOOKED
    return made
