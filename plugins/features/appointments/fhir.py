"""Appointments as FHIR R4 ``Appointment`` resources, read-only, under ``/api/v1/fhir``.

``GET /api/v1/fhir/Appointment?date=ge2026-03-01&date=lt2026-03-08&patient=<id>`` answers a
``searchset`` Bundle; ``GET /api/v1/fhir/Appointment/<id>`` one resource. Authentication is
the API's (a bearer key of the clinic); errors are ``OperationOutcome`` resources.

The mapping (see docs/appointments.md):

==============  =============================================================================
Relais          FHIR
==============  =============================================================================
id              ``id``
external_id     ``identifier`` (system :data:`EXTERNAL_ID_SYSTEM`)
status          ``status``: booked and confirmed → booked, cancelled → cancelled,
                no_show → noshow, done → fulfilled; the patient's participant status says
                whether the patient confirmed (accepted) or not yet (needs-action)
type            ``appointmentType.text``
reason          ``reasonCode[0].text``
starts_at/…     ``start``, ``end`` (UTC instants), ``minutesDuration``
patient         participant ``Patient/<id>`` (the API's patient id), with its name
practitioner    participant ``Practitioner/<id>`` (the staff id), with its name
location        participant with a ``Location`` reference by display only
created_at      ``created``; updated_at: ``meta.lastUpdated``
==============  =============================================================================
"""

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import g, request
from flask_babel import gettext as _

from core.plugin_api import (
    Conflict,
    ValidationError,
    answer_errors_as_fhir,
    api_blueprint,
    check,
    db,
    external_url,
    fhir_json,
    fhir_operation,
    fhir_resource,
    utcnow,
)
from core.plugin_api import (
    fhir_instant as instant,
)
from plugins.features.appointments import service
from plugins.features.appointments.models import Appointment, AppointmentStatus

EXTERNAL_ID_SYSTEM = "urn:relais:appointment:external-id"
DEFAULT_COUNT = 100
MAX_COUNT = 500

STATUS = {
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
    AppointmentStatus.DONE: "fulfilled",
}
PATIENT_STATUS = {
    AppointmentStatus.BOOKED: "needs-action",
    AppointmentStatus.CONFIRMED: "accepted",
    AppointmentStatus.CANCELLED: "declined",
    AppointmentStatus.NO_SHOW: "accepted",
    AppointmentStatus.DONE: "accepted",
}
# A FHIR status searched for -> the Relais statuses it stands for.
STATUSES_OF = {
    code: frozenset(s for s, c in STATUS.items() if c == code) for code in set(STATUS.values())
}

bp = api_blueprint("appointments_fhir", __name__, "/api/v1/fhir")


# --- the mapping ------------------------------------------------------------------------------


def to_fhir(appointment: Appointment) -> dict[str, Any]:
    """An appointment as a FHIR R4 ``Appointment`` resource (a JSON object)."""
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(appointment.id),
        "meta": {"lastUpdated": instant(appointment.updated_at)},
    }
    if appointment.external_id:
        resource["identifier"] = [{"system": EXTERNAL_ID_SYSTEM, "value": appointment.external_id}]
    resource["status"] = STATUS[appointment.status]
    resource["appointmentType"] = {"text": appointment.type}
    if appointment.reason:
        resource["reasonCode"] = [{"text": appointment.reason}]
    resource |= {
        "start": instant(appointment.starts_at),
        "end": instant(appointment.ends_at),
        "minutesDuration": appointment.minutes,
        "created": instant(appointment.created_at),
    }
    participants = [
        {
            "actor": {
                "reference": f"Patient/{appointment.patient_id}",
                "display": appointment.patient.full_name,
            },
            "required": "required",
            "status": PATIENT_STATUS[appointment.status],
        },
        {
            "actor": {
                "reference": f"Practitioner/{appointment.practitioner_id}",
                "display": appointment.practitioner.name,
            },
            "required": "required",
            "status": "accepted",
        },
    ]
    if appointment.location:
        participants.append(
            {
                "actor": {"type": "Location", "display": appointment.location},
                "required": "information-only",
                "status": "accepted",
            }
        )
    resource["participant"] = participants
    return resource


def searchset(rows: list[Appointment], total: int, links: dict[str, str]) -> dict[str, Any]:
    """A FHIR ``searchset`` Bundle of appointments."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(utcnow()),
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
        "entry": [
            {
                "fullUrl": external_url("appointments_fhir.appointment_read", appointment_id=a.id),
                "resource": to_fhir(a),
                "search": {"mode": "match"},
            }
            for a in rows
        ],
    }


# --- search parameters ------------------------------------------------------------------------

PREFIXES = ("eq", "ge", "gt", "le", "lt")


def date_range(tenant, value: str) -> tuple[datetime | None, datetime | None]:
    """The bounds a ``date`` parameter puts on an appointment's start: ``[lower, upper)``.

    ``2026-03-30`` is that day in the clinic's time zone; ``2026-03`` a month, ``2026`` a
    year; a time needs its offset. Prefixes ``eq`` (the default), ``ge``, ``gt``, ``le``,
    ``lt``. :raises ValidationError: on ``date``.
    """
    prefix, text = ("eq", value)
    if value[:2] in PREFIXES:
        prefix, text = value[:2], value[2:]
    low, high = _period(tenant, text)
    return {
        "eq": (low, high),
        "ge": (low, None),
        "gt": (high, None),
        "lt": (None, low),
        "le": (None, high),
    }[prefix]


def _period(tenant, text: str) -> tuple[datetime, datetime]:
    try:
        if len(text) == 4:
            year = check.plausible(date(int(text), 1, 1), "date").year
            return _day(tenant, date(year, 1, 1)), _day(tenant, date(year + 1, 1, 1))
        if len(text) == 7:
            first = check.plausible(date.fromisoformat(f"{text}-01"), "date")
            after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return _day(tenant, first), _day(tenant, after)
        if len(text) == 10:
            day = check.plausible(date.fromisoformat(text), "date")
            return _day(tenant, day), _day(tenant, day + timedelta(days=1))
        at = service.parse_time(text.replace(" ", "+"), "date")  # a "+" sent unescaped
        return at, at + timedelta(seconds=1)
    except ValueError:
        raise ValidationError(
            _("Give a date (2026-03-30) or a time with its offset, after ge, gt, le or lt."),
            "date",
        ) from None


def _day(tenant, day: date) -> datetime:
    return service.start_of_day(tenant, day)


def _reference(name: str, kind: str) -> uuid.UUID | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if "/" in value and not value.startswith(f"{kind}/"):
        raise ValidationError(_("Give a %(kind)s id.", kind=kind), name)
    try:
        return uuid.UUID(value.rpartition("/")[2])
    except ValueError:
        raise ValidationError(_("Unknown identifier."), name) from None


def _whole(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not low <= number <= high:
        raise ValidationError(
            _("A whole number from %(low)d to %(high)d.", low=low, high=high), name
        )
    return number


# --- endpoints --------------------------------------------------------------------------------


@bp.get("/Appointment")
@fhir_operation(
    "Search appointments (FHIR R4 Appointment)",
    query={
        "date": {"type": "string", "description": "e.g. ge2026-12-01 (repeatable)"},
        "patient": {"type": "string", "description": "Patient/<id> or the id"},
        "practitioner": {"type": "string", "description": "Practitioner/<id> or the id"},
        "status": {"type": "string", "description": "FHIR statuses, separated by commas"},
        "identifier": {"type": "string", "description": "<system>|<external id>"},
        "_count": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
        "_offset": {"type": "integer", "minimum": 0},
    },
    answers={200: fhir_resource("Bundle")},
)
def appointment_search():
    """Search appointments: ``date`` (repeatable), ``patient``, ``practitioner``,
    ``status``, ``identifier``, ``_count``, ``_offset``."""
    tenant = g.tenant
    lower = upper = None
    for value in request.args.getlist("date"):
        low, high = date_range(tenant, value.strip())
        if low is not None and (lower is None or low > lower):
            lower = low
        if high is not None and (upper is None or high < upper):
            upper = high
    statuses = None
    if request.args.get("status"):
        statuses = frozenset()
        for code in request.args["status"].split(","):
            if code not in STATUSES_OF:
                raise ValidationError(
                    _("Choose one of: %(v)s.", v=", ".join(sorted(STATUSES_OF))), "status"
                )
            statuses |= STATUSES_OF[code]
    external_id = None
    if request.args.get("identifier"):
        system, bar, value = request.args["identifier"].rpartition("|")
        if bar and system not in ("", EXTERNAL_ID_SYSTEM):
            raise ValidationError(
                _("Search by %(system)s|<id>.", system=EXTERNAL_ID_SYSTEM), "identifier"
            )
        external_id = value
    count = _whole("_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = _whole("_offset", 0, 0, 10**9)

    if lower is not None and upper is not None and upper <= lower:
        rows, total = [], 0
    else:
        rows, total = service.list_between(
            lower,
            upper,
            practitioner_id=_reference("practitioner", "Practitioner"),
            patient_id=_reference("patient", "Patient"),
            statuses=statuses,
            external_id=external_id,
            limit=count,
            offset=offset,
        )
    kept = [
        (k, v)
        for k in ("date", "patient", "practitioner", "status", "identifier")
        for v in request.args.getlist(k)
    ]

    def page(at: int) -> str:
        query = urlencode([*kept, ("_count", count), ("_offset", at)])
        return external_url("appointments_fhir.appointment_search") + "?" + query

    links = {"self": page(offset)}
    if offset + count < total and count:
        links["next"] = page(offset + count)
    if offset > 0:
        links["previous"] = page(max(0, offset - count))
    payload = searchset(rows, total, links)
    db.session.commit()  # the audit of the search
    return fhir_json(payload)


@bp.get("/Appointment/<appointment_id>")
@fhir_operation("Read an appointment (FHIR R4)", answers={200: fhir_resource("Appointment")})
def appointment_read(appointment_id: str):
    payload = to_fhir(service.get(appointment_id))
    db.session.commit()  # the audit of the read
    return fhir_json(payload)


# --- writing: practice software pushes its appointments as FHIR resources ----------------------

STATUS_FROM = {
    "booked": AppointmentStatus.BOOKED,
    "cancelled": AppointmentStatus.CANCELLED,
    "noshow": AppointmentStatus.NO_SHOW,
    "fulfilled": AppointmentStatus.DONE,
}
# A refused Relais field, as the FHIR element it came from.
ELEMENTS = {
    "external_id": "Appointment.identifier",
    "patient_id": "Appointment.participant",
    "practitioner_id": "Appointment.participant",
    "location": "Appointment.participant",
    "starts_at": "Appointment.start",
    "ends_at": "Appointment.end",
    "duration_minutes": "Appointment.minutesDuration",
    "status": "Appointment.status",
    "type": "Appointment.appointmentType",
    "reason": "Appointment.reasonCode",
}


def from_fhir(resource: Any, current: Appointment | None = None) -> dict[str, Any]:
    """The appointments service's fields from a FHIR ``Appointment`` (the inverse of
    :func:`to_fhir`). :raises ValidationError: naming the FHIR element."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
        raise ValidationError(_("Send an Appointment resource."), "Appointment.resourceType")
    data: dict[str, Any] = {}
    for identifier in _list(resource, "identifier"):
        if isinstance(identifier, dict) and identifier.get("system") == EXTERNAL_ID_SYSTEM:
            data["external_id"] = identifier.get("value")
    status = resource.get("status")
    if status not in STATUS_FROM:
        raise ValidationError(
            _("Choose one of: %(v)s.", v=", ".join(STATUS_FROM)), "Appointment.status"
        )
    # "booked" says nothing of the patient's confirmation: a confirmed one stays confirmed.
    if not (current is not None and current.status in STATUSES_OF["booked"] and status == "booked"):
        data["status"] = STATUS_FROM[status].value
    data["starts_at"] = resource.get("start")
    if resource.get("end") is not None:
        data["ends_at"] = resource["end"]
    elif resource.get("minutesDuration") is not None:
        data["duration_minutes"] = resource["minutesDuration"]
    kind = resource.get("appointmentType")
    if isinstance(kind, dict) and kind.get("text") is not None:
        data["type"] = kind["text"]
    reasons = _list(resource, "reasonCode")
    if reasons and isinstance(reasons[0], dict):
        data["reason"] = reasons[0].get("text")
    for participant in _list(resource, "participant"):
        actor = participant.get("actor") if isinstance(participant, dict) else None
        if not isinstance(actor, dict):
            raise ValidationError(_("Each participant needs an actor."), "Appointment.participant")
        kind_, _slash, ident = str(actor.get("reference") or "").partition("/")
        if kind_ == "Patient":
            data["patient_id"] = ident
        elif kind_ == "Practitioner":
            data["practitioner_id"] = ident
        elif actor.get("type") == "Location" or kind_ == "Location":
            data["location"] = actor.get("display")
    if "patient_id" not in data or "practitioner_id" not in data:
        raise ValidationError(
            _("Name the patient and the practitioner as participants."), "Appointment.participant"
        )
    return data


def _list(resource: dict, name: str) -> list:
    value = resource.get(name) or []
    if not isinstance(value, list):
        raise ValidationError(_("Send a list."), f"Appointment.{name}")
    return value


def _as_fhir_fields(exc: ValidationError) -> ValidationError:
    return ValidationError(exc.message, ELEMENTS.get(exc.field or "", exc.field))


@bp.post("/Appointment")
@fhir_operation(
    "Create an appointment (FHIR R4), or update the one with its identifier",
    body=fhir_resource("Appointment"),
    answers={200: fhir_resource("Appointment"), 201: fhir_resource("Appointment")},
)
def appointment_create():
    """Idempotent by ``identifier`` (system ``urn:relais:appointment:external-id``): the
    same appointment pushed again updates it (200) instead of booking it twice (201)."""
    try:
        appointment, created = service.upsert(g.tenant, from_fhir(request.get_json(silent=True)))
    except ValidationError as exc:
        raise _as_fhir_fields(exc) from None
    payload = to_fhir(appointment)
    db.session.commit()
    answer = fhir_json(payload, 201 if created else 200)
    answer.headers["Location"] = external_url(
        "appointments_fhir.appointment_read", appointment_id=appointment.id
    )
    return answer


@bp.put("/Appointment/<appointment_id>")
@fhir_operation(
    "Update an appointment (FHIR R4): move it, or cancel it (status cancelled)",
    body=fhir_resource("Appointment"),
    answers={200: fhir_resource("Appointment")},
    errors=[409],
)
def appointment_update(appointment_id: str):
    """Its patient and identifier stay what they are (409 when the resource says others)."""
    appointment = service.find(appointment_id)
    data = from_fhir(request.get_json(silent=True), appointment)
    same_patient = str(data.pop("patient_id")) == str(appointment.patient_id)
    if not same_patient or data.pop("external_id", appointment.external_id) != (
        appointment.external_id
    ):
        raise Conflict(_("This field cannot change."), "Appointment.participant")
    try:
        appointment = service.update(g.tenant, appointment, data)
    except ValidationError as exc:
        raise _as_fhir_fields(exc) from None
    payload = to_fhir(appointment)
    db.session.commit()
    return fhir_json(payload)


# --- errors: OperationOutcome -----------------------------------------------------------------


answer_errors_as_fhir(bp)
