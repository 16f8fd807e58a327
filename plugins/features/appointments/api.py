"""The appointments JSON API, ``/api/v1/appointments`` on each clinic's subdomain.

It authenticates as the core's API does (``Authorization: Bearer <key>``, a key of this
clinic) and answers errors the same way: ``{"error": {"code", "message", "field"}}``, 422
naming the field for bad input, with nothing written.
"""

import uuid
from datetime import timedelta

from flask import g, jsonify, request
from flask_babel import gettext as _

from core.plugin_api import (
    ValidationError,
    api_blueprint,
    api_operation,
    api_schema,
    check,
    db,
)
from plugins.features.appointments import service
from plugins.features.appointments.models import AppointmentStatus

PAGE_SIZE = 100
DEFAULT_DAYS = 7

bp = api_blueprint("appointments_api", __name__, "/api/v1")

_STATUS = {"type": "string", "enum": [s.value for s in AppointmentStatus]}
_MAYBE_TEXT = {"type": ["string", "null"]}
_FIELDS = {
    "practitioner_id": {"type": "string", "format": "uuid"},
    "starts_at": {"type": "string", "format": "date-time"},
    "ends_at": {"type": "string", "format": "date-time"},
    "duration_minutes": {"type": "integer", "minimum": 1, "maximum": service.MAX_MINUTES},
    "status": _STATUS,
    "type": _MAYBE_TEXT,
    "location": _MAYBE_TEXT,
    "reason": _MAYBE_TEXT,
}
APPOINTMENT = api_schema(
    "Appointment",
    {
        "type": "object",
        "required": ["id", "patient_id", "practitioner_id", "starts_at", "ends_at", "status"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "external_id": _MAYBE_TEXT,
            "patient_id": {"type": "string", "format": "uuid"},
            **_FIELDS,
            "created_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "cancelled_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
)
NEW_APPOINTMENT = api_schema(
    "NewAppointment",
    {
        "type": "object",
        "required": ["patient_id", "practitioner_id", "starts_at"],
        "additionalProperties": False,
        "properties": {
            "external_id": {"type": "string", "maxLength": 200},
            "patient_id": {"type": "string", "format": "uuid"},
            **_FIELDS,
        },
    },
)
APPOINTMENT_CHANGE = api_schema(
    "AppointmentChange", {"type": "object", "additionalProperties": False, "properties": _FIELDS}
)
APPOINTMENT_PAGE = api_schema(
    "AppointmentPage",
    {
        "type": "object",
        "required": ["appointments", "total", "page", "from", "to"],
        "properties": {
            "appointments": {"type": "array", "items": APPOINTMENT},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "from": {"type": "string", "format": "date-time"},
            "to": {"type": "string", "format": "date-time"},
        },
    },
)
# What an answer with an appointment leads to (OpenAPI links: stateful tests follow them).
_ID = {"appointment_id": "$response.body#/id"}
_FOLLOW = {
    "ReadAppointment": ("appointments_api.appointment_read", _ID),
    "ChangeAppointment": ("appointments_api.appointment_update", _ID),
    "CancelAppointment": ("appointments_api.appointment_cancel", _ID),
}


def body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError(_("Send a JSON object."), "body")
    return data


def optional_id(name: str) -> uuid.UUID | None:
    """A query parameter holding an id (``Patient/<id>`` as FHIR writes it is taken too)."""
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return uuid.UUID(value.rpartition("/")[2])
    except ValueError:
        raise ValidationError(_("Unknown identifier."), name) from None


@bp.post("/appointments")
@api_operation(
    "Create an appointment, or update the one with its external_id",
    tag="Appointments",
    body=NEW_APPOINTMENT,
    answers={200: APPOINTMENT, 201: APPOINTMENT},
    links={200: _FOLLOW, 201: _FOLLOW},
)
def appointment_upsert():
    """Create an appointment (201), or update the one with the same ``external_id`` (200)."""
    appointment, created = service.upsert(g.tenant, body())
    payload = service.to_json(appointment)
    db.session.commit()
    return jsonify(payload), (201 if created else 200)


@bp.get("/appointments")
@api_operation(
    "List appointments in a time window, 100 a page",
    tag="Appointments",
    query={
        "from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"},
        "status": {"type": "string", "description": "statuses, separated by commas"},
        "practitioner": {"type": "string", "format": "uuid"},
        "patient": {"type": "string", "format": "uuid"},
        "page": {"type": "integer", "minimum": 1, "maximum": 100_000},
    },
    answers={200: APPOINTMENT_PAGE},
)
def appointment_list():
    """Appointments starting from ``from`` (default: today) until ``to`` (default: a week
    later), by start time, 100 a page."""
    args = request.args
    start = (
        service.parse_bound(g.tenant, args["from"], "from")
        if args.get("from")
        else service.start_of_day(g.tenant, service.local_date(g.tenant, service.now()))
    )
    end = (
        service.parse_bound(g.tenant, args["to"], "to")
        if args.get("to")
        else start + timedelta(days=DEFAULT_DAYS)
    )
    if end <= start:
        raise ValidationError(_("The end must be after the start."), "to")
    statuses = None
    if args.get("status"):
        statuses = frozenset(service.parse_status(s) for s in args["status"].split(","))
    page = check.page(args.get("page"))
    rows, total = service.list_between(
        start,
        end,
        practitioner_id=optional_id("practitioner"),
        patient_id=optional_id("patient"),
        statuses=statuses,
        limit=PAGE_SIZE,
        offset=(max(page, 1) - 1) * PAGE_SIZE,
    )
    payload = {
        "appointments": [service.to_json(a) for a in rows],
        "total": total,
        "page": page,
        "from": start.isoformat(),
        "to": end.isoformat(),
    }
    db.session.commit()  # the audit of the search
    return jsonify(payload)


@bp.get("/appointments/<uuid:appointment_id>")
@api_operation("Read an appointment", tag="Appointments", answers={200: APPOINTMENT})
def appointment_read(appointment_id: uuid.UUID):
    payload = service.to_json(service.get(appointment_id))
    db.session.commit()
    return jsonify(payload)


@bp.patch("/appointments/<uuid:appointment_id>")
@api_operation(
    "Change an appointment", tag="Appointments", body=APPOINTMENT_CHANGE, answers={200: APPOINTMENT}
)
def appointment_update(appointment_id: uuid.UUID):
    """Move an appointment, change its status, type, location or reason."""
    appointment = service.update(g.tenant, service.find(appointment_id), body())
    payload = service.to_json(appointment)
    db.session.commit()
    return jsonify(payload)


@bp.post("/appointments/<uuid:appointment_id>/cancel")
@api_operation("Cancel an appointment", tag="Appointments", answers={200: APPOINTMENT})
def appointment_cancel(appointment_id: uuid.UUID):
    """Cancel an appointment; cancelling it again answers the same, changing nothing."""
    appointment = service.cancel(g.tenant, service.find(appointment_id))
    payload = service.to_json(appointment)
    db.session.commit()
    return jsonify(payload)
