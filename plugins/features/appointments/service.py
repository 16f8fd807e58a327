"""Appointments: the domain functions pages, the JSON API, FHIR and other features call.

Every function acts in the current clinic's scope, takes plain values (a JSON object's or a
form's fields, by the API's names) and raises :class:`core.errors.ValidationError` naming the
field at fault: nothing is written then. Each change calls ``relais_appointment_changed`` in
the same transaction, once the row is flushed, so what a plugin writes on it (reminders)
commits or rolls back with it.
"""

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from core.plugin_api import (
    NotFound,
    Patient,
    Role,
    User,
    ValidationError,
    check,
    db,
    format_time,
    hooks_for,
    plugin_setting,
    record_audit,
    utcnow,
)
from plugins.features.appointments.models import (
    MAX_EXTERNAL_ID,
    MAX_LOCATION,
    MAX_REASON,
    MAX_TYPE,
    Appointment,
    AppointmentStatus,
)

PLUGIN = "appointments"
DEFAULT_TYPE = "consultation"
FIELDS = (
    "external_id",
    "patient_id",
    "practitioner_id",
    "starts_at",
    "ends_at",
    "duration_minutes",
    "status",
    "type",
    "location",
    "reason",
)
# What a change of an existing appointment may carry (PATCH): its patient and its
# external id are what it is.
CHANGEABLE = frozenset(FIELDS) - {"external_id", "patient_id"}
MAX_MINUTES = 24 * 60
# A booking made "now" reaches the server a little after the minute it names.
GRACE = timedelta(minutes=5)
CHANGES = ("created", "moved", "cancelled", "status")


def now() -> datetime:
    """The current time (aware UTC); tests set it with a clock fixture."""
    return utcnow()


# --- reading ----------------------------------------------------------------------------------


def find(appointment_id: uuid.UUID | str) -> Appointment:
    """An appointment of the current clinic. :raises NotFound: also for another clinic's."""
    try:
        appointment_id = uuid.UUID(str(appointment_id))
    except ValueError:
        raise NotFound(_("No such appointment.")) from None
    found = db.session.scalar(sa.select(Appointment).where(Appointment.id == appointment_id))
    if found is None:
        raise NotFound(_("No such appointment."))
    return found


def get(appointment_id: uuid.UUID | str) -> Appointment:
    """:func:`find`, its read audited (the reason is health data)."""
    appointment = find(appointment_id)
    record_audit("appointment.read", appointment.id)
    return appointment


def find_by_external_id(external_id: str) -> Appointment | None:
    return db.session.scalar(sa.select(Appointment).where(Appointment.external_id == external_id))


def between(
    start: datetime | None,
    end: datetime | None,
    practitioner_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    statuses: frozenset[AppointmentStatus] | None = None,
    external_id: str | None = None,
) -> sa.Select:
    """The query of appointments starting in ``[start, end)`` (either open when None), by
    start time."""
    stmt = sa.select(Appointment)
    if start is not None:
        stmt = stmt.where(Appointment.starts_at >= start)
    if end is not None:
        stmt = stmt.where(Appointment.starts_at < end)
    if practitioner_id is not None:
        stmt = stmt.where(Appointment.practitioner_id == practitioner_id)
    if patient_id is not None:
        stmt = stmt.where(Appointment.patient_id == patient_id)
    if statuses:
        stmt = stmt.where(Appointment.status.in_(sorted(statuses)))
    if external_id is not None:
        stmt = stmt.where(Appointment.external_id == external_id)
    return stmt.order_by(Appointment.starts_at, Appointment.id)


def list_between(
    start: datetime | None,
    end: datetime | None,
    practitioner_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    statuses: frozenset[AppointmentStatus] | None = None,
    external_id: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[Appointment], int]:
    """Appointments of the current clinic starting in ``[start, end)`` (aware times; either
    open when None), by start time, cancelled ones included unless ``statuses`` says
    otherwise; and how many match in all (``limit`` and ``offset`` page through them).
    The search is audited."""
    stmt = between(start, end, practitioner_id, patient_id, statuses, external_id)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    rows = list(db.session.scalars(stmt))
    record_audit("appointment.search")
    return rows, total or 0


# --- writing ----------------------------------------------------------------------------------


def create(tenant, data: dict[str, Any]) -> Appointment:
    """Book an appointment from a JSON object's or a form's fields.

    ``patient_id``, ``practitioner_id``, ``starts_at`` and ``ends_at`` or
    ``duration_minutes`` are required; ``status`` defaults to booked, ``type`` to the
    clinic's first declared type (else "consultation"), ``location`` to the clinic's address.

    :raises ValidationError: naming the field; nothing is written.
    """
    appointment = Appointment(status=AppointmentStatus.BOOKED)
    changes = _apply(tenant, appointment, data, creating=True)
    db.session.add(appointment)
    db.session.flush()
    record_audit("appointment.create", appointment.id)
    _announce(tenant, appointment, changes)
    return appointment


def upsert(tenant, data: dict[str, Any]) -> tuple[Appointment, bool]:
    """Create an appointment, or update the one with the same ``external_id``: practice
    software pushes the same appointment again and again, and it stays one.

    :return: the appointment, and whether it was created.
    :raises ValidationError: naming the field; nothing is written.
    """
    external_id = _external_id(data.get("external_id"))
    if external_id is None:
        return create(tenant, data), True
    _lock_external_id(tenant, external_id)
    existing = find_by_external_id(external_id)
    if existing is None:
        try:
            with db.session.begin_nested():
                return create(tenant, {**data, "external_id": external_id}), True
        except IntegrityError as exc:
            # The same external id pushed twice at once: the other request created it.
            if "external_id" not in str(exc.orig):
                raise
        existing = find_by_external_id(external_id)
        if existing is None:  # pragma: no cover - the unique violation says it exists
            raise ValidationError(_("Try again."), "external_id")
    fields = {k: v for k, v in data.items() if k != "external_id"}
    if "patient_id" in fields and (
        _uuid(fields.pop("patient_id"), "patient_id") != existing.patient_id
    ):
        raise ValidationError(_("This external id is another patient's appointment."), "patient_id")
    return update(tenant, existing, fields, allowed=CHANGEABLE), False


def _lock_external_id(tenant, external_id: str) -> None:
    """Pushes of one external id run one after the other (until the transaction ends), so
    the second finds what the first created instead of booking the same time again."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"appointments:{tenant.id}:{external_id}"},
        )


def update(
    tenant, appointment: Appointment, data: dict[str, Any], allowed=CHANGEABLE
) -> Appointment:
    """Change the fields present in ``data`` (a PATCH); the others stay. Changing only
    ``starts_at`` keeps the duration.

    :raises ValidationError: naming the field; nothing is written.
    """
    unknown = set(data) - set(allowed)
    if unknown:
        field = sorted(unknown)[0]
        if field in FIELDS:
            raise ValidationError(_("This field cannot change."), field)
        raise ValidationError(_("Unknown field: %(field)s.", field=field), field)
    changes = _apply(tenant, appointment, data, creating=False)
    if not changes and not db.session.is_modified(appointment):
        return appointment
    appointment.updated_at = now()
    db.session.flush()
    record_audit("appointment.update", appointment.id)
    _announce(tenant, appointment, changes)
    return appointment


def move(
    tenant,
    appointment: Appointment,
    starts_at: datetime | str,
    ends_at: datetime | str | None = None,
    practitioner_id: uuid.UUID | str | None = None,
) -> Appointment:
    """Move an appointment to another time (keeping its duration unless ``ends_at`` is
    given), and to another practitioner if one is given. :raises ValidationError."""
    data: dict[str, Any] = {"starts_at": starts_at}
    if ends_at is not None:
        data["ends_at"] = ends_at
    if practitioner_id is not None:
        data["practitioner_id"] = practitioner_id
    return update(tenant, appointment, data)


def cancel(tenant, appointment: Appointment) -> Appointment:
    """Cancel an appointment; cancelling it again changes nothing."""
    return update(tenant, appointment, {"status": AppointmentStatus.CANCELLED.value})


def set_status(tenant, appointment: Appointment, status: str) -> Appointment:
    """Mark an appointment booked, confirmed, cancelled, no_show or done.

    :raises ValidationError: on ``status`` when it is none of those.
    """
    return update(tenant, appointment, {"status": status})


def problems(tenant, data: dict[str, Any]) -> dict[str, ValidationError]:
    """Every field a booking would be refused for, by field, each checked on its own (a
    form shows them all at once); empty when :func:`create` may go on, which checks them
    again and, under the practitioner's lock, that the time is free."""
    found: dict[str, ValidationError] = {}

    def collect(check_field, *args) -> None:
        try:
            check_field(*args)
        except ValidationError as exc:
            found.setdefault(exc.field or "", exc)

    collect(_patient, data.get("patient_id"))
    collect(_practitioner, data.get("practitioner_id"))
    if "starts_at" in data:
        collect(_times, Appointment(), data, True)
        collect(_not_past, data["starts_at"])
    collect(_type, tenant, data.get("type"))
    collect(check.text, data.get("location"), "location", MAX_LOCATION)
    collect(check.text, data.get("reason"), "reason", MAX_REASON)
    return found


def _not_past(starts_at: Any) -> None:
    if parse_time(starts_at, "starts_at") < now() - GRACE:
        raise ValidationError(
            _("This time is past: an appointment is booked for a time to come."), "starts_at"
        )


def _announce(tenant, appointment: Appointment, changes: list[str]) -> None:
    hooks = hooks_for(tenant)
    for change in changes:
        hooks.relais_appointment_changed(tenant=tenant, appointment=appointment, change=change)


# --- validation -------------------------------------------------------------------------------


def _apply(tenant, appointment: Appointment, data: dict[str, Any], creating: bool) -> list[str]:
    """Validate ``data`` whole, then set it on ``appointment``; returns the changes made
    (the hook's ``change`` values). Nothing is set when a field is refused."""
    unknown = set(data) - set(FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError(_("Unknown field: %(field)s.", field=field), field)
    new: dict[str, Any] = {}

    if creating:
        new["external_id"] = _external_id(data.get("external_id"))
        new["patient_id"] = _patient(data.get("patient_id")).id
    # The same practitioner again (practice software pushes whole appointments) is no
    # change, even if their account was deactivated since.
    given = data.get("practitioner_id")
    if creating or ("practitioner_id" in data and str(given) != str(appointment.practitioner_id)):
        new["practitioner_id"] = _practitioner(data.get("practitioner_id")).id
    practitioner_id = new.get("practitioner_id", appointment.practitioner_id)

    starts_at, ends_at = _times(appointment, data, creating)
    if creating:
        _not_past(starts_at)
    new["starts_at"], new["ends_at"] = starts_at, ends_at

    status = appointment.status
    if "status" in data:
        status = parse_status(data["status"])
    new["status"] = status
    if creating or "type" in data:
        new["type"] = _type(tenant, data.get("type"))
    if creating or "location" in data:
        location = check.text(data.get("location"), "location", MAX_LOCATION) or None
        if creating and location is None:
            location = check.text(
                plugin_setting(tenant, PLUGIN, "address"), "location", MAX_LOCATION
            )
        new["location"] = location or None
    if creating or "reason" in data:
        new["reason"] = check.text(data.get("reason"), "reason", MAX_REASON) or None

    moved = not creating and (
        starts_at != appointment.starts_at
        or ends_at != appointment.ends_at
        or practitioner_id != appointment.practitioner_id
    )
    was_active = creating or appointment.status != AppointmentStatus.CANCELLED
    active = status != AppointmentStatus.CANCELLED
    if moved and not was_active and not active:
        raise ValidationError(
            _("A cancelled appointment cannot be moved: book a new one."), "starts_at"
        )
    if active and (creating or moved or not was_active):
        _check_overlap(tenant, appointment, practitioner_id, starts_at, ends_at)

    changes = []
    if creating:
        changes.append("created")
    else:
        if moved or new.get("type", appointment.type) != appointment.type:
            changes.append("moved")
        if status != appointment.status:
            changes.append("cancelled" if not active else "status")
    if status != appointment.status or creating:
        appointment.cancelled_at = None if active else now()
    for name, value in new.items():
        if creating or getattr(appointment, name) != value:
            setattr(appointment, name, value)
    return changes


def _times(appointment: Appointment, data: dict[str, Any], creating: bool):
    if creating and data.get("starts_at") in (None, ""):
        raise ValidationError(_("This field is required."), "starts_at")
    starts_at = appointment.starts_at
    if "starts_at" in data:
        starts_at = parse_time(data["starts_at"], "starts_at")
    has_end = data.get("ends_at") not in (None, "")
    has_duration = data.get("duration_minutes") not in (None, "")
    if has_end and has_duration:
        raise ValidationError(_("Give the end or the duration, not both."), "duration_minutes")
    if has_end:
        ends_at = parse_time(data["ends_at"], "ends_at")
    elif has_duration:
        minutes = data["duration_minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            minutes = check.whole_number(minutes, "duration_minutes")
        if not 1 <= minutes <= MAX_MINUTES:
            raise ValidationError(
                _("A duration from 1 to %(max)d minutes.", max=MAX_MINUTES), "duration_minutes"
            )
        ends_at = starts_at + timedelta(minutes=minutes)
    elif creating:
        raise ValidationError(_("Give the end or the duration."), "ends_at")
    else:  # moved, or not: the duration stays
        ends_at = starts_at + (appointment.ends_at - appointment.starts_at)
    if ends_at <= starts_at:
        raise ValidationError(_("The end must be after the start."), "ends_at")
    if ends_at - starts_at > timedelta(minutes=MAX_MINUTES):
        raise ValidationError(_("An appointment lasts at most 24 hours."), "ends_at")
    return starts_at, ends_at


def parse_time(value: Any, field: str) -> datetime:
    """An aware time: a datetime, or ISO 8601 text with its offset
    (``2026-03-30T09:00:00+02:00``, ``2026-03-30T07:00:00Z``). :raises ValidationError."""
    parsed = check.moment(value, field)
    if parsed is None:
        raise ValidationError(_("Give an ISO 8601 time with its offset."), field)
    return parsed.astimezone(UTC)


def local_time(tenant, day: Any, clock: Any, day_field: str, field: str) -> datetime:
    """The aware UTC time of a date and a wall-clock time typed in the clinic's time zone.

    A time the clocks skip (02:30 on the last Sunday of March in Paris) is refused.
    :raises ValidationError: on ``day_field`` or ``field``.
    """
    on = check.day(day, day_field)
    if on is None:
        raise ValidationError(_("Use the form YYYY-MM-DD."), day_field)
    try:
        at = time.fromisoformat(str(clock or ""))
    except ValueError:
        raise ValidationError(_("Use the form HH:MM."), field) from None
    zone = ZoneInfo(tenant.timezone)
    wall = datetime.combine(on, at.replace(tzinfo=None), tzinfo=zone)
    utc = wall.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
        raise ValidationError(_("The clocks change at this time: choose another."), field)
    return utc


def parse_bound(tenant, value: Any, field: str) -> datetime:
    """A bound of a search: a date (``2026-03-30``, the start of that day in the clinic's
    time zone) or an ISO 8601 time with its offset. :raises ValidationError."""
    text = str(value or "")
    if len(text) == 10:
        return start_of_day(tenant, check.day(text, field))
    return parse_time(text, field)


def start_of_day(tenant, day: date) -> datetime:
    """When a day begins in the clinic's time zone (aware UTC)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tenant.timezone)).astimezone(UTC)


def local_date(tenant, at: datetime) -> date:
    """The clinic's calendar day a time falls on."""
    return at.astimezone(ZoneInfo(tenant.timezone)).date()


def _uuid(value: Any, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        if value in (None, ""):
            raise ValidationError(_("This field is required."), field) from None
        raise ValidationError(_("Unknown identifier."), field) from None


def _patient(value: Any) -> Patient:
    if value in (None, ""):
        raise ValidationError(_("This field is required."), "patient_id")
    try:
        patient_id = uuid.UUID(str(value))
    except ValueError:
        patient_id = None
    patient = patient_id and db.session.scalar(sa.select(Patient).where(Patient.id == patient_id))
    if not patient:
        raise ValidationError(_("No such patient."), "patient_id")
    return patient


def _practitioner(value: Any) -> User:
    if value in (None, ""):
        raise ValidationError(_("This field is required."), "practitioner_id")
    try:
        user_id = uuid.UUID(str(value))
    except ValueError:
        user_id = None
    user = user_id and db.session.scalar(
        sa.select(User).where(User.id == user_id, User.role == Role.PRACTITIONER)
    )
    if not user:
        raise ValidationError(_("Unknown practitioner."), "practitioner_id")
    if not user.active:
        raise ValidationError(_("This practitioner's account is deactivated."), "practitioner_id")
    return user


def _external_id(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationError(_("Give the external id as text."), "external_id")
    return check.text(value, "external_id", MAX_EXTERNAL_ID) or None


def parse_status(value: Any) -> AppointmentStatus:
    try:
        return AppointmentStatus(str(value))
    except ValueError:
        choices = ", ".join(s.value for s in AppointmentStatus)
        raise ValidationError(_("Choose one of: %(v)s.", v=choices), "status") from None


def declared_types(tenant) -> list[str]:
    """The appointment types the clinic declared (its ``types`` setting); empty: any."""
    return split_types(plugin_setting(tenant, PLUGIN, "types") or "")


def split_types(text: str) -> list[str]:
    """Appointment types written with commas between them, as stored: lower case, single
    spaces."""
    return [t for t in (" ".join(part.split()).lower() for part in text.split(",")) if t]


def is_type_word(kind: str) -> bool:
    """A type is a short word or two: letters, digits, spaces, ``-`` and ``_``."""
    return 0 < len(kind) <= MAX_TYPE and all(c.isalnum() or c in " -_" for c in kind)


def _type(tenant, value: Any) -> str:
    types = declared_types(tenant)
    if value in (None, ""):
        return types[0] if types else DEFAULT_TYPE
    if not isinstance(value, str):
        raise ValidationError(_("Give the type as text, e.g. consultation."), "type")
    kind = " ".join(value.split()).lower()
    if not is_type_word(kind):
        raise ValidationError(
            _("A short word, e.g. consultation (letters, digits, spaces, - and _)."), "type"
        )
    if types and kind not in types:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(types)), "type")
    return kind


def refuses_overlaps(tenant) -> bool:
    return plugin_setting(tenant, PLUGIN, "overlaps") != "allow"


def _check_overlap(tenant, appointment, practitioner_id, starts_at, ends_at) -> None:
    if not refuses_overlaps(tenant):
        return
    # One booking at a time per practitioner: two requests cannot both find the slot free.
    practitioner = db.session.scalar(
        sa.select(User).where(User.id == practitioner_id).with_for_update()
    )
    stmt = sa.select(Appointment).where(
        Appointment.practitioner_id == practitioner_id,
        Appointment.status != AppointmentStatus.CANCELLED,
        Appointment.starts_at < ends_at,
        Appointment.ends_at > starts_at,
    )
    if appointment.id is not None:
        stmt = stmt.where(Appointment.id != appointment.id)
    other = db.session.scalar(stmt.order_by(Appointment.starts_at).limit(1))
    if other is not None:
        raise ValidationError(
            _(
                "%(name)s already has an appointment from %(start)s to %(end)s.",
                name=practitioner.name,
                start=clock(tenant, other.starts_at),
                end=clock(tenant, other.ends_at),
            ),
            "starts_at",
        )


def clock(tenant, at: datetime) -> str:
    """A time of day as the clinic reads it: in its time zone, in the page's language."""
    return format_time(at, tz=tenant.timezone)


# --- JSON -------------------------------------------------------------------------------------


def to_json(appointment: Appointment) -> dict[str, Any]:
    """An appointment as the JSON API gives it (times in ISO 8601, UTC)."""

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    return {
        "id": str(appointment.id),
        "external_id": appointment.external_id,
        "patient_id": str(appointment.patient_id),
        "practitioner_id": str(appointment.practitioner_id),
        "starts_at": iso(appointment.starts_at),
        "ends_at": iso(appointment.ends_at),
        "duration_minutes": appointment.minutes,
        "status": appointment.status.value,
        "type": appointment.type,
        "location": appointment.location,
        "reason": appointment.reason,
        "created_at": iso(appointment.created_at),
        "updated_at": iso(appointment.updated_at),
        "cancelled_at": iso(appointment.cancelled_at),
    }
