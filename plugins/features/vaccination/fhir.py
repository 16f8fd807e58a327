"""Vaccination as FHIR R4, read-only, under ``/api/v1/fhir`` (a bearer key of the clinic):

- ``GET /Immunization?patient=<id>`` and ``GET /Immunization/<id>``: doses given (status
  ``completed``), with the vaccine, the batch (``lotNumber``), the centre and the dose
  number in its series; audited as reads of health data;
- ``GET /Schedule`` and ``GET /Schedule/<centre id>``: each centre's agenda;
- ``GET /Slot?schedule=<centre id>&start=2027-01-18``: that day's slots (up to 7 days with
  ``end``), ``free`` while a place is left, else ``busy``.

Errors are ``OperationOutcome`` resources naming the parameter.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import g, request
from flask_babel import gettext as _

from core.plugin_api import (
    NotFound,
    ValidationError,
    answer_errors_as_fhir,
    api_blueprint,
    check,
    db,
    external_url,
    fhir_json,
    fhir_operation,
    fhir_resource,
    record_audit,
    utcnow,
)
from plugins.features.vaccination import booking, slots
from plugins.features.vaccination.models import Booking, BookingStatus, Centre, Vaccine

VACCINE_SYSTEM = "urn:relais:vaccine"
CENTRE_SYSTEM = "urn:relais:vaccination-centre"
MAX_DAYS = 7

bp = api_blueprint("vaccination_fhir", __name__, "/api/v1/fhir")
answer_errors_as_fhir(bp)


def instant(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def immunization(dose: Booking, vaccine: Vaccine, centre: Centre) -> dict[str, Any]:
    """A dose given as a FHIR R4 ``Immunization``."""
    resource: dict[str, Any] = {
        "resourceType": "Immunization",
        "id": str(dose.id),
        "meta": {"lastUpdated": instant(dose.updated_at)},
        "status": "completed",
        "vaccineCode": {
            "coding": [{"system": VACCINE_SYSTEM, "code": vaccine.code, "display": vaccine.name}],
            "text": vaccine.name,
        },
        "patient": {"reference": f"Patient/{dose.patient_id}"},
        "occurrenceDateTime": instant(dose.given_at or dose.starts_at),
        "recorded": instant(dose.given_at or dose.updated_at),
        "primarySource": True,
        "location": {"display": centre.name},
        "protocolApplied": [
            {"doseNumberPositiveInt": dose.dose, "seriesDosesPositiveInt": vaccine.doses}
        ],
    }
    if dose.batch:
        resource["lotNumber"] = dose.batch
    return resource


def _bundle(entries: list[tuple[str | None, dict]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(utcnow()),
        "total": len(entries),
        "entry": [
            {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
            if url
            else {"resource": resource, "search": {"mode": "match"}}
            for url, resource in entries
        ],
    }


def _id(value: str | None, name: str, kind: str) -> uuid.UUID | None:
    value = (value or "").strip()
    if not value:
        return None
    if "/" in value and not value.startswith(f"{kind}/"):
        raise ValidationError(_("Give a %(kind)s id.", kind=kind), name)
    try:
        return uuid.UUID(value.rpartition("/")[2])
    except ValueError:
        raise ValidationError(_("Unknown identifier."), name) from None


def _given(query) -> list[tuple[str, dict]]:
    doses = list(db.session.scalars(query.order_by(Booking.starts_at)))
    vaccines = {v.id: v for v in db.session.scalars(sa.select(Vaccine))}
    centres = {
        c.id: c
        for c in db.session.scalars(
            sa.select(Centre).where(Centre.id.in_({d.centre_id for d in doses}))
        )
    }
    return [
        (
            external_url("vaccination_fhir.immunization_read", dose_id=d.id),
            immunization(d, vaccines[d.vaccine_id], centres[d.centre_id]),
        )
        for d in doses
    ]


@bp.get("/Immunization")
@fhir_operation(
    "A patient's doses given (FHIR R4 Immunization)",
    query={"patient": {"type": "string", "description": "Patient/<id> or the id"}},
    answers={200: fhir_resource("Bundle")},
)
def immunization_search():
    """A patient's doses given: ``patient`` is required."""
    patient_id = _id(request.args.get("patient"), "patient", "Patient")
    if patient_id is None:
        raise ValidationError(_("Give the patient: patient=Patient/<id>."), "patient")
    entries = _given(
        sa.select(Booking).where(
            Booking.patient_id == patient_id, Booking.status == BookingStatus.DONE
        )
    )
    record_audit("vaccination.immunization.search", patient_id)
    db.session.commit()
    return fhir_json(_bundle(entries))


@bp.get("/Immunization/<dose_id>")
@fhir_operation("Read a dose given (FHIR R4)", answers={200: fhir_resource("Immunization")})
def immunization_read(dose_id: str):
    wanted = _uuid_or_none(dose_id)
    entries = wanted and _given(
        sa.select(Booking).where(Booking.id == wanted, Booking.status == BookingStatus.DONE)
    )
    if not entries:
        raise NotFound(_("No such dose given."))
    record_audit("vaccination.immunization.read", wanted)
    db.session.commit()
    return fhir_json(entries[0][1])


def schedule(centre: Centre) -> dict[str, Any]:
    """A centre's agenda as a FHIR R4 ``Schedule``."""
    return {
        "resourceType": "Schedule",
        "id": str(centre.id),
        "identifier": [{"system": CENTRE_SYSTEM, "value": centre.code}],
        "active": True,
        "serviceType": [{"text": "vaccination"}],
        "actor": [{"display": f"{centre.name}, {centre.address}".strip(", ")}],
    }


@bp.get("/Schedule")
@fhir_operation(
    "The vaccination centres' agendas (FHIR R4 Schedule)", answers={200: fhir_resource("Bundle")}
)
def schedule_search():
    centres = db.session.scalars(sa.select(Centre).order_by(Centre.code))
    return fhir_json(
        _bundle(
            [
                (external_url("vaccination_fhir.schedule_read", centre_id=c.id), schedule(c))
                for c in centres
            ]
        )
    )


@bp.get("/Schedule/<centre_id>")
@fhir_operation(
    "Read a centre's agenda (FHIR R4 Schedule)", answers={200: fhir_resource("Schedule")}
)
def schedule_read(centre_id: str):
    wanted = _uuid_or_none(centre_id)
    centre = wanted and db.session.scalar(sa.select(Centre).where(Centre.id == wanted))
    if centre is None:
        raise NotFound(_("No such centre."))
    return fhir_json(schedule(centre))


def _uuid_or_none(value: str) -> uuid.UUID | None:
    """A FHIR id of ours, or None (a 404 as FHIR answers it, not a routing miss)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@bp.get("/Slot")
@fhir_operation(
    "Free vaccination slots of a centre (FHIR R4 Slot)",
    query={
        "schedule": {"type": "string", "description": "Schedule/<id> or the id"},
        "start": {"type": "string", "format": "date"},
        "end": {"type": "string", "format": "date"},
    },
    answers={200: fhir_resource("Bundle")},
)
def slot_search():
    """A centre's slots (``schedule``) from day ``start`` (default today) to ``end`` (the
    same day by default, at most 7 days)."""
    centre = booking.centre(_id(request.args.get("schedule"), "schedule", "Schedule"), "schedule")
    first = check.day(request.args.get("start"), "start") or slots.local_day(g.tenant, utcnow())
    last = check.day(request.args.get("end"), "end") or first
    if not first <= last < first + timedelta(days=MAX_DAYS):
        raise ValidationError(_("At most %(n)d days after the start.", n=MAX_DAYS), "end")
    length = timedelta(minutes=centre.slot_minutes)
    entries = [
        (
            None,  # slots have no page of their own: they are read by search
            {
                "resourceType": "Slot",
                "id": f"{centre.id}-{s.starts_at:%Y%m%dT%H%MZ}".lower(),
                "schedule": {"reference": f"Schedule/{centre.id}"},
                "status": "free" if s.free > 0 else "busy",
                "start": instant(s.starts_at),
                "end": instant(s.starts_at + length),
                "comment": _("%(n)d places free", n=max(s.free, 0)),
            },
        )
        for s in slots.day_slots(g.tenant, centre, first, last)
    ]
    return fhir_json(_bundle(entries))


__all__ = ["bp"]
