"""Booking doses: eligibility, dose windows, and places taken without overbooking.

Every place is taken by one conditional statement (``booked = booked + 1 WHERE booked <
capacity RETURNING``) on the slot's counter and on the day's stock, in the caller's
transaction: booking dose 1 and dose 2 together takes both places or, on the first refusal,
raises and the caller's rollback gives back what was taken. Places are taken in one order
(slots by time, then stock by day), so two bookings never wait on each other in a circle.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite

from core.plugin_api import (
    Conflict,
    Message,
    NotFound,
    Patient,
    UTCDateTime,
    ValidationError,
    best_channels,
    cancel_message,
    db,
    format_date,
    format_time,
    insert_many,
    new_id,
    send,
    utcnow,
)
from plugins.features.vaccination import offered, slots
from plugins.features.vaccination.models import (
    Booking,
    BookingStatus,
    Campaign,
    Centre,
    Line,
    SlotCount,
    Stock,
    Vaccine,
)

ACTIVE = (BookingStatus.BOOKED, BookingStatus.DONE)
REMIND_BEFORE = timedelta(days=1)


class Full(Conflict):
    """No place (or no dose) left where the patient asked: the answer of a rush."""

    code = "full"


@dataclass(frozen=True)
class Window:
    """The days a next dose may be given: ``first`` to ``last``, ideally on ``ideal``."""

    first: date
    ideal: date
    last: date


def window(vaccine: Vaccine, previous: date) -> Window:
    """The window of the dose after one given (or booked) on ``previous``."""
    return Window(
        previous + timedelta(days=vaccine.min_interval_days),
        previous + timedelta(days=vaccine.ideal_interval_days),
        previous + timedelta(days=vaccine.max_interval_days),
    )


def age_on(patient: Patient, day: date) -> int | None:
    born = patient.birth_date
    if born is None:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _in_band(age: int, low: int | None, high: int | None) -> bool:
    return (low is None or age >= low) and (high is None or age <= high)


def describe(campaign: Campaign) -> str:
    """A campaign's band in words, e.g. "Over 65s (65 years and over)"."""
    if campaign.min_age is not None and campaign.max_age is not None:
        band = _("%(low)d to %(high)d years", low=campaign.min_age, high=campaign.max_age)
    elif campaign.min_age is not None:
        band = _("%(low)d years and over", low=campaign.min_age)
    elif campaign.max_age is not None:
        band = _("up to %(high)d years", high=campaign.max_age)
    else:
        band = _("every age")
    return f"{campaign.name} ({band})"


def check_eligible(patient: Patient, centre: Centre, vaccine: Vaccine, day: date) -> None:
    """Refuse, with the reason, a patient the vaccine or the centre may not take on ``day``.

    The vaccine's ages hold everywhere; a restricted centre (a mega-centre's agenda) takes
    only the patients of an open campaign for the vaccine: in its age band and, when it names
    attributes, with one of them. :raises ValidationError: naming the field at fault.
    """
    campaigns = []
    if centre.restricted:
        campaigns = list(
            db.session.scalars(
                sa.select(Campaign)
                .where(
                    Campaign.active.is_(True),
                    sa.or_(Campaign.vaccine_id.is_(None), Campaign.vaccine_id == vaccine.id),
                )
                .order_by(Campaign.name)
            )
        )
    needs_age = vaccine.min_age is not None or vaccine.max_age is not None or campaigns
    age = age_on(patient, day)
    if needs_age and age is None:
        raise ValidationError(
            _("Your date of birth is needed to check who may have this vaccine."), "birth_date"
        )
    if age is not None and not _in_band(age, vaccine.min_age, vaccine.max_age):
        raise ValidationError(
            _(
                "%(vaccine)s is given from %(low)s to %(high)s years of age; you will be %(age)d.",
                vaccine=vaccine.name,
                low=vaccine.min_age if vaccine.min_age is not None else 0,
                high=vaccine.max_age if vaccine.max_age is not None else "…",
                age=age,
            ),
            "vaccine",
        )
    if not centre.restricted:
        return
    held = set(patient.attributes or ())
    for campaign in campaigns:
        if _in_band(age, campaign.min_age, campaign.max_age) and (
            not campaign.attributes or held & set(campaign.attributes)
        ):
            return
    if not campaigns:
        raise ValidationError(
            _("This centre books only the groups of an open campaign, and none is open."),
            "centre",
        )
    raise ValidationError(
        _(
            "This centre books only these groups: %(groups)s. You are not in one of them yet; "
            "another centre may take you.",
            groups="; ".join(describe(c) for c in campaigns),
        ),
        "centre",
    )


# --- places ------------------------------------------------------------------------------------


def _take_place(tenant, centre: Centre, at: datetime, field: str) -> None:
    """One place in the slot at ``at``, or :class:`Full` naming ``field``: one statement,
    which creates the slot's counter with its first place taken (its capacity, the centre's
    lines times places, counted in it) or takes one more while one is left."""
    offered.forget(centre.id)
    places = (
        sa.select(sa.func.count())
        .select_from(Line)
        .where(Line.centre_id == centre.id)
        .scalar_subquery()
        * centre.capacity
    )
    first = sa.select(
        sa.literal(tenant.id, sa.Uuid),
        sa.literal(centre.id, sa.Uuid),
        sa.literal(at, UTCDateTime),
        places,
        sa.literal(1),
    ).where(places > 0)  # a centre without lines has no place: nothing inserted, Full
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    taken = db.session.execute(
        dialect.insert(SlotCount)
        .from_select(["tenant_id", "centre_id", "starts_at", "capacity", "booked"], first)
        .on_conflict_do_update(
            index_elements=["tenant_id", "centre_id", "starts_at"],
            set_={"booked": SlotCount.booked + 1},
            where=SlotCount.booked < SlotCount.capacity,
        )
        .returning(SlotCount.booked)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        raise Full(_("This slot has just been taken: choose another one."), field)


def _take_dose(tenant, centre: Centre, vaccine: Vaccine, at: datetime, field: str) -> None:
    day = slots.local_day(tenant, at)
    taken = db.session.execute(
        sa.update(Stock)
        .where(
            Stock.centre_id == centre.id,
            Stock.vaccine_id == vaccine.id,
            Stock.day == day,
            Stock.booked < Stock.doses,
        )
        .values(booked=Stock.booked + 1)
        .returning(Stock.booked)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        raise Full(_("No dose of this vaccine is left that day: choose another day."), field)


def _give_back(tenant, booking: Booking) -> None:
    """Free the place and the dose a booking held (its transaction commits both or none)."""
    give_back(tenant, booking.centre_id, booking.vaccine_id, booking.starts_at)


def give_back(tenant, centre_id: uuid.UUID, vaccine_id: uuid.UUID, at: datetime) -> None:
    """Free a place in the slot at ``at`` and the day's dose of the vaccine."""
    offered.forget(centre_id)
    db.session.execute(
        sa.update(SlotCount)
        .where(
            SlotCount.centre_id == centre_id,
            SlotCount.starts_at == at,
            SlotCount.booked > 0,
        )
        .values(booked=SlotCount.booked - 1)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.update(Stock)
        .where(
            Stock.centre_id == centre_id,
            Stock.vaccine_id == vaccine_id,
            Stock.day == slots.local_day(tenant, at),
            Stock.booked > 0,
        )
        .values(booked=Stock.booked - 1)
        .execution_options(synchronize_session=False)
    )


def take(tenant, where: Centre, shot: Vaccine, at: datetime, field: str) -> None:
    """Take a place in the slot at ``at`` and the day's dose, or raise :class:`Full`."""
    _take_place(tenant, where, at, field)
    _take_dose(tenant, where, shot, at, field)


def _line(centre: Centre, at: datetime, leave_out: uuid.UUID | None = None) -> uuid.UUID:
    """The line with the fewest patients in the slot (its counter row is locked by now, so
    bookings of the slot pick their line one after the other)."""
    busy = (
        sa.select(sa.func.count(Booking.id))
        .where(
            Booking.line_id == Line.id,
            Booking.starts_at == at,
            Booking.status.in_(ACTIVE),
            Booking.id != leave_out if leave_out else sa.true(),
        )
        .scalar_subquery()
    )
    return db.session.scalar(
        sa.select(Line.id).where(Line.centre_id == centre.id).order_by(busy, Line.position).limit(1)
    )


# --- booking -------------------------------------------------------------------------------------


def centre(centre_id: uuid.UUID | None, field: str = "centre") -> Centre:
    found = (
        db.session.scalar(sa.select(Centre).where(Centre.id == centre_id)) if centre_id else None
    )
    if found is None:
        raise ValidationError(_("Choose a centre of the list."), field)
    return found


def vaccine(vaccine_id: uuid.UUID | None, field: str = "vaccine") -> Vaccine:
    found = (
        db.session.scalar(sa.select(Vaccine).where(Vaccine.id == vaccine_id))
        if vaccine_id
        else None
    )
    if found is None:
        raise ValidationError(_("Choose a vaccine of the list."), field)
    return found


def _check_slot(tenant, where: Centre, at: datetime | None, field: str) -> datetime:
    if at is None:
        raise ValidationError(_("Choose a slot."), field)
    if at <= utcnow():
        raise ValidationError(_("This slot has passed: choose another one."), field)
    if not slots.is_slot(tenant, where, at):
        raise ValidationError(_("No slot starts then at this centre."), field)
    return at


def _check_window(tenant, vaccine: Vaccine, previous: datetime, at: datetime, field: str):
    allowed = window(vaccine, slots.local_day(tenant, previous))
    if not allowed.first <= slots.local_day(tenant, at) <= allowed.last:
        raise ValidationError(
            _(
                "The next dose of %(vaccine)s is given from %(first)s to %(last)s.",
                vaccine=vaccine.name,
                first=format_date(allowed.first),
                last=format_date(allowed.last),
            ),
            field,
        )


def doses_of(patient_id: uuid.UUID, vaccine_id: uuid.UUID | None = None) -> list[Booking]:
    """A patient's doses booked or given, by time."""
    query = sa.select(Booking).where(Booking.patient_id == patient_id, Booking.status.in_(ACTIVE))
    if vaccine_id is not None:
        query = query.where(Booking.vaccine_id == vaccine_id)
    return list(db.session.scalars(query.order_by(Booking.starts_at)))


def book(
    tenant,
    patient: Patient,
    centre_id: uuid.UUID | None,
    vaccine_id: uuid.UUID | None,
    first: datetime | None,
    second: datetime | None = None,
    second_vaccine_id: uuid.UUID | None = None,
    second_centre_id: uuid.UUID | None = None,
    held: bool = False,
) -> list[Booking]:
    """Book the patient's next dose at ``first`` and, for a vaccine of two doses or more,
    the one after at ``second``, in the caller's transaction: both or neither.

    :raises ValidationError: naming the field (``centre``, ``vaccine``, ``first``,
        ``second``, ``second_vaccine``, ``birth_date``); :class:`Full` when a place or a dose
        was taken meanwhile; :class:`Conflict` when the patient already has a booking.
    :param held: the first slot's place and dose are held for the patient already (a
        waitlist's offer): they are not taken again.
    """
    where = centre(centre_id)
    shot = vaccine(vaccine_id)
    if second_vaccine_id is not None and second_vaccine_id != shot.id:
        raise ValidationError(
            _("Both doses are of the same vaccine: %(name)s.", name=shot.name), "second_vaccine"
        )
    where_second = centre(second_centre_id, "second_centre") if second_centre_id else where
    # One booking at a time per patient: two tabs booking at once cannot both pass the
    # check below (the row lock holds until the transaction ends).
    db.session.execute(sa.select(Patient.id).where(Patient.id == patient.id).with_for_update())
    previous = doses_of(patient.id, shot.id)
    if any(b.status == BookingStatus.BOOKED for b in previous):
        raise Conflict(
            _("You already have a booking for this vaccine: move or cancel it."), "vaccine"
        )
    given = len(previous)
    if given >= shot.doses:
        raise ValidationError(_("You have had every dose of this vaccine."), "vaccine")
    first = _check_slot(tenant, where, first, "first")
    if previous:
        _check_window(tenant, shot, previous[-1].starts_at, first, "first")
    check_eligible(patient, where, shot, slots.local_day(tenant, first))
    wanted = [(where, first, "first")]
    if given + 1 < shot.doses:
        if second is None:
            raise ValidationError(_("Choose a slot for the next dose too."), "second")
        second = _check_slot(tenant, where_second, second, "second")
        _check_window(tenant, shot, first, second, "second")
        wanted.append((where_second, second, "second"))
    # The one order of locks: slots by time, then the days' stock by time.
    to_take = wanted[1:] if held else wanted
    for place, at, field in to_take:
        _take_place(tenant, place, at, field)
    for place, at, field in to_take:
        _take_dose(tenant, place, shot, at, field)
    series = new_id()
    now = utcnow()
    rows = [
        {
            "tenant_id": tenant.id,
            "id": new_id(),
            "series_id": series,
            "patient_id": patient.id,
            "centre_id": place.id,
            "line_id": _line(place, at),
            "vaccine_id": shot.id,
            "dose": given + n,
            "starts_at": at,
            "status": BookingStatus.BOOKED.value,
            "batch": None,
            "given_at": None,
            "reminder_id": None,
            "created_at": now,
            "updated_at": now,
        }
        for n, (place, at, _field) in enumerate(wanted, start=1)
    ]
    insert_many(Booking.__table__, rows)
    made = list(
        db.session.scalars(
            sa.select(Booking).where(Booking.series_id == series).order_by(Booking.dose)
        )
    )
    for booking in made:
        remind(tenant, patient, booking, shot, where if booking.centre_id == where.id else None)
    return made


def remind(tenant, patient: Patient, booking: Booking, shot: Vaccine, where=None) -> None:
    """Put the dose's reminder in the outbox, to leave the day before (at once when closer),
    in the patient's language; its id is kept to cancel it with the booking."""
    channels = best_channels(tenant, patient)
    if not channels:
        return
    where = where or centre(booking.centre_id)
    with force_locale(patient.language):
        template = _(
            "Reminder: your vaccination ({{ vaccine }}, dose {{ dose }}) at {{ centre }}, "
            "{{ address }}, on {{ day }} at {{ time }}. To move or cancel it: {{ clinic }}."
        )
        variables = {
            "vaccine": shot.name,
            "dose": booking.dose,
            "centre": where.name,
            "address": where.address,
            "day": format_date(booking.starts_at, weekday=True),
            "time": format_time(booking.starts_at),
            "clinic": tenant.name,
        }
    message = send(
        tenant,
        patient,
        "reminder",
        template,
        variables,
        channels,
        not_before=max(utcnow(), booking.starts_at - REMIND_BEFORE),
        expires_at=booking.starts_at,
    )
    booking.reminder_id = message.id


def _forget_reminder(booking: Booking) -> None:
    if booking.reminder_id is not None:
        message = db.session.get(Message, (booking.tenant_id, booking.reminder_id))
        if message is not None:
            cancel_message(message, "vaccination booking cancelled or moved")
        booking.reminder_id = None


def series(patient: Patient, series_id: uuid.UUID) -> list[Booking]:
    """The doses of one booking of the patient. :raises NotFound: for anything else."""
    found = list(
        db.session.scalars(
            sa.select(Booking)
            .where(Booking.series_id == series_id, Booking.patient_id == patient.id)
            .order_by(Booking.dose)
        )
    )
    if not found:
        raise NotFound(_("No such booking."))
    return found


def cancel(tenant, patient: Patient, series_id: uuid.UUID) -> list[Booking]:
    """Cancel the doses of a booking not given yet, freeing their places and doses; doing it
    twice changes nothing."""
    now = utcnow()
    freed = []
    for booking in series(patient, series_id):
        if booking.status != BookingStatus.BOOKED:
            continue
        _give_back(tenant, booking)
        _forget_reminder(booking)
        booking.status, booking.updated_at = BookingStatus.CANCELLED, now
        freed.append(booking)
    return freed


def move(tenant, patient: Patient, booking_id: uuid.UUID, at: datetime | None) -> Booking:
    """Move one dose to the slot at ``at`` of the same centre: the doses around it stay in
    their windows. :raises ValidationError: on ``starts_at``; :class:`Full`."""
    booking = db.session.scalar(
        sa.select(Booking).where(Booking.id == booking_id, Booking.patient_id == patient.id)
    )
    if booking is None or booking.status != BookingStatus.BOOKED:
        raise NotFound(_("No such booking."))
    where = centre(booking.centre_id)
    shot = vaccine(booking.vaccine_id)
    at = _check_slot(tenant, where, at, "starts_at")
    others = [b for b in doses_of(patient.id, shot.id) if b.id != booking.id]
    before = [b for b in others if b.dose < booking.dose]
    after = [b for b in others if b.dose > booking.dose]
    if before:
        _check_window(tenant, shot, before[-1].starts_at, at, "starts_at")
    if after:
        _check_window(tenant, shot, at, after[0].starts_at, "starts_at")
    if at == booking.starts_at:
        return booking
    _take_place(tenant, where, at, "starts_at")
    if slots.local_day(tenant, at) != slots.local_day(tenant, booking.starts_at):
        _take_dose(tenant, where, shot, at, "starts_at")
        _give_back(tenant, booking)
    else:
        _give_back_place(booking)
    _forget_reminder(booking)
    booking.starts_at, booking.updated_at = at, utcnow()
    booking.line_id = _line(where, at, leave_out=booking.id)
    remind(tenant, patient, booking, shot, where)
    return booking


def _give_back_place(booking: Booking) -> None:
    offered.forget(booking.centre_id)
    db.session.execute(
        sa.update(SlotCount)
        .where(
            SlotCount.centre_id == booking.centre_id,
            SlotCount.starts_at == booking.starts_at,
            SlotCount.booked > 0,
        )
        .values(booked=SlotCount.booked - 1)
        .execution_options(synchronize_session=False)
    )
