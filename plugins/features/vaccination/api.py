"""The vaccination JSON API, ``/api/v1/vaccination`` on each clinic's subdomain, for a call
centre or a practice's software booking on a patient's behalf.

It authenticates as the core's API does (``Authorization: Bearer <key>``). Errors are
``{"error": {"code", "message", "field"}}``: 422 naming the field for bad input, 409 with
code ``full`` when the place or the dose was taken meanwhile; nothing is written then.
"""

import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import g, jsonify, request
from flask_babel import gettext as _

from core.plugin_api import (
    NotFound,
    Patient,
    ValidationError,
    api_blueprint,
    api_operation,
    api_schema,
    check,
    db,
    record_audit,
    utcnow,
)
from plugins.features.vaccination import booking, slots, waitlist
from plugins.features.vaccination.models import Booking

MAX_DAYS = 92

bp = api_blueprint("vaccination_api", __name__, "/api/v1/vaccination")

_ID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
DOSE = api_schema(
    "VaccinationDose",
    {
        "type": "object",
        "required": ["id", "series", "patient", "centre", "vaccine", "dose", "starts_at", "status"],
        "properties": {
            "id": _ID,
            "series": _ID,
            "patient": _ID,
            "centre": _ID,
            "line": _ID,
            "vaccine": _ID,
            "dose": {"type": "integer", "minimum": 1},
            "starts_at": _TIME,
            "status": {"type": "string"},
            "batch": {"type": ["string", "null"]},
        },
    },
)
DOSES = api_schema(
    "VaccinationDoses",
    {
        "type": "object",
        "required": ["doses"],
        "properties": {"series": _ID, "doses": {"type": "array", "items": DOSE}},
    },
)


def body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError(_("Send a JSON object."), "body")
    return data


def an_id(value, field: str) -> uuid.UUID | None:
    """An id sent (``Patient/<id>`` as FHIR writes it is taken too); None when empty."""
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value).rpartition("/")[2])
    except ValueError:
        raise ValidationError(_("Unknown identifier."), field) from None


def patient_of(value) -> Patient:
    patient_id = an_id(value, "patient")
    found = db.session.scalar(sa.select(Patient).where(Patient.id == patient_id))
    if found is None:
        raise ValidationError(_("Unknown identifier."), "patient")
    return found


def _known(condition) -> None:
    """A 404 for a booking this clinic does not have, before the body is even read."""
    if db.session.scalar(sa.select(Booking.id).where(condition).limit(1)) is None:
        raise NotFound(_("No such booking."))


def to_json(row: Booking) -> dict:
    return {
        "id": str(row.id),
        "series": str(row.series_id),
        "patient": str(row.patient_id),
        "centre": str(row.centre_id),
        "line": str(row.line_id),
        "vaccine": str(row.vaccine_id),
        "dose": row.dose,
        "starts_at": row.starts_at.isoformat(),
        "status": row.status.value,
        "batch": row.batch,
    }


@bp.get("/slots")
@api_operation(
    "Open vaccination slots of a centre for a vaccine",
    tag="Vaccination",
    query={
        "centre": _ID,
        "vaccine": _ID,
        "from": {"type": "string", "format": "date"},
        "to": {"type": "string", "format": "date"},
    },
    answers={
        200: {
            "type": "object",
            "required": ["slots"],
            "properties": {
                "slots": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"starts_at": _TIME, "free": {"type": "integer"}},
                    },
                }
            },
        }
    },
)
def slot_list():
    """Open slots of ``centre`` for ``vaccine`` from day ``from`` (default today) to ``to``
    (default a week later, at most 92 days)."""
    args = request.args
    where = booking.centre(an_id(args.get("centre"), "centre"))
    shot = booking.vaccine(an_id(args.get("vaccine"), "vaccine"))
    first = check.day(args.get("from"), "from") or slots.local_day(g.tenant, utcnow())
    last = check.day(args.get("to"), "to") or first + timedelta(days=7)
    if not first <= last <= first + timedelta(days=MAX_DAYS):
        raise ValidationError(_("At most %(n)d days after the start.", n=MAX_DAYS), "to")
    found = slots.open_slots(g.tenant, where, shot.id, first, last)
    return jsonify(
        {"slots": [{"starts_at": s.starts_at.isoformat(), "free": s.free} for s in found]}
    )


@bp.post("/bookings")
@api_operation(
    "Book a patient's next dose and the one after, both or neither",
    tag="Vaccination",
    body={
        "type": "object",
        "required": ["patient", "centre", "vaccine", "first"],
        "properties": {
            "patient": _ID,
            "centre": _ID,
            "vaccine": _ID,
            "first": _TIME,
            "second": _TIME,
            "second_vaccine": _ID,
            "second_centre": _ID,
        },
    },
    answers={201: DOSES},
    errors=[409],
)
def booking_create():
    """Book a patient's next dose and the one after, both or neither: 201 with the doses."""
    data = body()
    patient = patient_of(data.get("patient"))
    waitlist.release_expired(g.tenant)
    made = booking.book(
        g.tenant,
        patient,
        an_id(data.get("centre"), "centre"),
        an_id(data.get("vaccine"), "vaccine"),
        check.moment(data.get("first"), "first"),
        check.moment(data.get("second"), "second"),
        an_id(data.get("second_vaccine"), "second_vaccine"),
        an_id(data.get("second_centre"), "second_centre"),
    )
    payload = {"series": str(made[0].series_id), "doses": [to_json(b) for b in made]}
    db.session.commit()
    return jsonify(payload), 201


@bp.get("/bookings")
@api_operation(
    "A patient's doses, booked or given",
    tag="Vaccination",
    query={"patient": _ID},
    answers={200: DOSES},
)
def booking_search():
    """A patient's doses booked or given (``patient``), audited as a read of health data."""
    patient = patient_of(request.args.get("patient"))
    payload = {"doses": [to_json(b) for b in booking.doses_of(patient.id)]}
    record_audit("vaccination.bookings.search", patient.id)
    db.session.commit()
    return jsonify(payload)


@bp.post("/bookings/<uuid:series_id>/cancel")
@api_operation(
    "Cancel the doses of a booking not given yet",
    tag="Vaccination",
    body={"type": "object", "required": ["patient"], "properties": {"patient": _ID}},
    answers={200: DOSES},
)
def booking_cancel(series_id: uuid.UUID):
    """Cancel the doses of a booking not given yet; again, it changes nothing."""
    _known(Booking.series_id == series_id)
    patient = patient_of(body().get("patient"))
    waitlist.offer_freed(g.tenant, booking.cancel(g.tenant, patient, series_id))
    payload = {"doses": [to_json(b) for b in booking.series(patient, series_id)]}
    db.session.commit()
    return jsonify(payload)


@bp.post("/bookings/dose/<uuid:booking_id>/move")
@api_operation(
    "Move one dose to another slot of its centre, inside its window",
    tag="Vaccination",
    body={
        "type": "object",
        "required": ["patient", "starts_at"],
        "properties": {"patient": _ID, "starts_at": _TIME},
    },
    answers={200: DOSE},
    errors=[409],
)
def booking_move(booking_id: uuid.UUID):
    """Move one dose to another slot of its centre, the doses around it staying in their
    windows."""
    _known(Booking.id == booking_id)
    data = body()
    patient = patient_of(data.get("patient"))
    moved = booking.move(
        g.tenant, patient, booking_id, check.moment(data.get("starts_at"), "starts_at")
    )
    payload = to_json(moved)
    db.session.commit()
    return jsonify(payload)
