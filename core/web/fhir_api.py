"""The core's FHIR R4 resources under ``/api/v1/fhir``: ``Patient`` (read and search) and the
server's ``CapabilityStatement`` (``/metadata``), which lists every FHIR route of the core and
of the features the clinic enabled, from their API operations.

Authentication is the API's (a bearer key of the clinic), except ``/metadata``, which FHIR
clients read first; errors are ``OperationOutcome`` resources.
"""

from typing import Any

from flask import Blueprint, current_app, g, request

from core import validation as check
from core.clinic import patients
from core.clinic.models import Patient
from core.config import external_url
from core.db import db, utcnow
from core.plugins import enabled_plugins, own_version
from core.web import api
from core.web.fhir import (
    answer_errors_as_fhir,
    fhir_json,
    fhir_operation,
    fhir_resource,
    instant,
)
from core.web.openapi import documented_rules

bp = Blueprint("fhir", __name__, url_prefix="/api/v1/fhir")
answer_errors_as_fhir(bp)

LANGUAGE_SYSTEM = "urn:ietf:bcp:47"


@bp.before_request
def authenticate():
    if request.endpoint != "fhir.metadata":
        api.authenticate()


def to_fhir(patient: Patient) -> dict[str, Any]:
    """A patient as a FHIR R4 ``Patient``: name, phone, e-mail, sex, birth date, language and
    practitioners; never their follow-up attributes (health data the API keeps to itself)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "meta": {"lastUpdated": instant(patient.updated_at)},
        "active": True,
        "name": [{"use": "official", "family": patient.last_name, "given": [patient.first_name]}],
        "communication": [
            {
                "language": {"coding": [{"system": LANGUAGE_SYSTEM, "code": patient.language}]},
                "preferred": True,
            }
        ],
    }
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone, "use": "mobile"})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if telecom:
        resource["telecom"] = telecom
    if patient.sex:
        resource["gender"] = patient.sex
    if patient.birth_date:
        resource["birthDate"] = patient.birth_date.isoformat()
    if patient.practitioners:
        resource["generalPractitioner"] = [
            {"reference": f"Practitioner/{u.id}", "display": u.name} for u in patient.practitioners
        ]
    return resource


SEARCH = {
    "name": {"type": "string", "maxLength": 200, "description": "part of the name"},
    "phone": {"type": "string", "maxLength": 40, "description": "the number, however typed"},
    "email": {"type": "string", "maxLength": 254},
    "birthdate": {"type": "string", "format": "date"},
    "_page": {"type": "integer", "minimum": 1, "maximum": 100_000},
}


@bp.get("/Patient")
@fhir_operation(
    "Search patients (FHIR R4 Patient), 50 a page",
    query=SEARCH,
    answers={200: fhir_resource("Bundle")},
)
def patient_search():
    """By ``name``, ``phone`` or ``email`` (parts, as the staff's search box), and
    ``birthdate``; pages of 50 (``_page``), linked from the Bundle."""
    words = " ".join(
        check.text(request.args.get(name), name, SEARCH[name]["maxLength"])
        for name in ("name", "phone", "email")
        if request.args.get(name)
    )
    born = check.day(request.args.get("birthdate"), "birthdate")
    page = check.page(request.args.get("_page"), "_page")
    rows, total = patients.search_patients(words, page, birth_date=born)

    def at(number: int) -> str:
        kept = {k: v for k, v in request.args.items() if k != "_page"}
        return external_url("fhir.patient_search", **kept, _page=number)

    links = [{"relation": "self", "url": at(page)}]
    if page * patients.PAGE_SIZE < total:
        links.append({"relation": "next", "url": at(page + 1)})
    if page > 1:
        links.append({"relation": "previous", "url": at(page - 1)})
    payload = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(utcnow()),
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": external_url("fhir.patient_read", patient_id=p.id),
                "resource": to_fhir(p),
                "search": {"mode": "match"},
            }
            for p in rows
        ],
    }
    db.session.commit()  # the audit of the search
    return fhir_json(payload)


@bp.get("/Patient/<patient_id>")
@fhir_operation("Read a patient (FHIR R4 Patient)", answers={200: fhir_resource("Patient")})
def patient_read(patient_id: str):
    payload = to_fhir(patients.get_patient(patient_id))
    db.session.commit()  # the audit of the read
    return fhir_json(payload)


# --- what this server can do ------------------------------------------------------------------

INTERACTIONS = {("GET", False): "search-type", ("GET", True): "read"}
INTERACTIONS |= {("POST", False): "create", ("PUT", True): "update"}
SEARCH_TYPES = {"date": "date", "birthdate": "date", "patient": "reference"}
SEARCH_TYPES |= {"practitioner": "reference", "status": "token", "identifier": "token"}


@bp.get("/metadata")
@fhir_operation(
    "What this FHIR server offers (CapabilityStatement)",
    public=True,
    answers={200: fhir_resource("CapabilityStatement")},
)
def metadata():
    """The resources, interactions and search parameters of the clinic's FHIR routes."""
    enabled = enabled_plugins(g.tenant)
    resources: dict[str, dict[str, Any]] = {}
    for rule in documented_rules(current_app, enabled.__contains__):
        if not rule.rule.startswith(bp.url_prefix + "/") or rule.endpoint == "fhir.metadata":
            continue
        kind, _slash, rest = rule.rule.removeprefix(bp.url_prefix + "/").partition("/")
        entry = resources.setdefault(kind, {"type": kind, "interaction": [], "searchParam": []})
        operation = current_app.view_functions[rule.endpoint].openapi
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            code = INTERACTIONS.get((method, bool(rest)))
            if code and {"code": code} not in entry["interaction"]:
                entry["interaction"].append({"code": code})
        for name in operation.query:
            if not name.startswith("_"):
                entry["searchParam"].append(
                    {"name": name, "type": SEARCH_TYPES.get(name, "string")}
                )
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(utcnow()),
        "kind": "instance",
        "software": {"name": "Relais", "version": own_version()},
        "implementation": {
            "description": g.tenant.name,
            "url": external_url("fhir.metadata").removesuffix("/metadata"),
        },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": "Authorization: Bearer <API key of the clinic>"},
                "resource": [resources[k] for k in sorted(resources)],
            }
        ],
    }
    return fhir_json(statement)
