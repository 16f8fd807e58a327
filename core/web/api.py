"""The JSON API for integrators (practice software), on each clinic's subdomain under /api/v1.

Every call carries ``Authorization: Bearer <key>``; a key is looked up only among the keys of
the clinic whose subdomain is called, so it works nowhere else. Errors are
``{"error": {"code", "message", "field"}}``.
"""

import uuid

from flask import Blueprint, g, jsonify, request
from flask_babel import gettext as _

from core.clinic import apikeys, consent, patients
from core.clinic.models import ConsentMethod
from core.db import db, utcnow
from core.delivery import outbox, presenters
from core.errors import Conflict, DomainError, NotFound, ValidationError

bp = Blueprint("api", __name__)


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


@bp.before_request
def authenticate():
    """Require an API key of the clinic (``Authorization: Bearer <key>``), else 401 JSON;
    the key acts in the request (``g.api_key``). Used with ``bp.before_request``."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    key = apikeys.key_for_token(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise Unauthorized(_("Send a valid API key: Authorization: Bearer <key>."))
    key.last_used_at = utcnow()
    g.api_key = key


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError(_("Send a JSON object."), "body")
    return data


@bp.get("/patients")
def patient_list():
    page = request.args.get("page", 1, type=int) or 1
    rows, total = patients.search_patients(request.args.get("q", ""), page)
    body = {"patients": [patients.to_json(p) for p in rows], "total": total, "page": page}
    db.session.commit()
    return jsonify(body)


@bp.post("/patients")
def patient_create():
    patient = patients.create_patient(g.tenant, _body())
    db.session.commit()
    return jsonify(patients.to_json(patient)), 201


@bp.get("/patients/<uuid:patient_id>")
def patient_read(patient_id: uuid.UUID):
    body = patients.to_json(patients.get_patient(patient_id))
    db.session.commit()
    return jsonify(body)


@bp.patch("/patients/<uuid:patient_id>")
def patient_update(patient_id: uuid.UUID):
    patient = patients.update_patient(g.tenant, patients.get_patient(patient_id), _body())
    db.session.commit()
    return jsonify(patients.to_json(patient))


@bp.get("/patients/<uuid:patient_id>/consents")
def consent_list(patient_id: uuid.UUID):
    """A patient's consent on every channel, and every step of it (the proof)."""
    body = consent.to_json(patients.get_patient(patient_id))
    db.session.commit()
    return jsonify(body)


CONSENT_FIELDS = {"channel", "action", "method"}


@bp.post("/patients/<uuid:patient_id>/consents")
def consent_create(patient_id: uuid.UUID):
    """Record a step of a patient's consent: 201 with the new state, or 200 with
    ``"changed": false`` when it changes nothing (e.g. a second opt-out)."""
    patient = patients.find_patient(patient_id)
    data = _body()
    unknown = set(data) - CONSENT_FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError(_("Unknown field: %(field)s.", field=field), field)
    channel, action, method = consent.parse_step(data, default_method=ConsentMethod.API)
    step = consent.record_step(patient, channel, action, method)
    state = consent.state_json(consent.state(patient, channel))
    db.session.commit()
    body = {"channel": channel, **state, "changed": step is not None}
    return jsonify(body), (201 if step is not None else 200)


MESSAGE_FIELDS = {
    "patient_id",
    "purpose",
    "template",
    "variables",
    "channels",
    "not_before",
    "expires_at",
}


@bp.post("/messages")
def message_create():
    """Queue a message to a patient; answers at once with its id (202), its status and what
    the country's rules said (a refusal's reason, a deferral's date)."""
    data = _body()
    unknown = set(data) - MESSAGE_FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError(_("Unknown field: %(field)s.", field=field), field)
    try:
        patient = patients.find_patient(data.get("patient_id"))
    except NotFound as exc:
        raise ValidationError(exc.message, "patient_id") from None
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ValidationError(_("Send an object of variables."), "variables")
    channels = data.get("channels") or ["sms"]
    if not isinstance(channels, list):
        raise ValidationError(_("Send a list of channels."), "channels")
    message = outbox.send(
        g.tenant,
        patient,
        str(data.get("purpose", "")),
        data.get("template") or "",
        variables,
        channels,
        not_before=presenters.parse_time(data.get("not_before"), "not_before"),
        expires_at=presenters.parse_time(data.get("expires_at"), "expires_at"),
    )
    db.session.commit()
    return jsonify(
        {
            "id": str(message.id),
            "status": str(message.status),
            "verdict": presenters.verdict_json(message),
        }
    ), 202


@bp.get("/messages/<uuid:message_id>")
def message_read(message_id: uuid.UUID):
    """A message's status, with every status change and attempt timestamped."""
    return jsonify(presenters.to_json(presenters.find_message(message_id)))


@bp.post("/messages/<uuid:message_id>/cancel")
def message_cancel(message_id: uuid.UUID):
    """Cancel a message that has not left yet; 409 when it is too late."""
    message = presenters.find_message(message_id)
    if not outbox.cancel(message, "cancelled through the API"):
        raise Conflict(
            _("Too late to cancel: the message is %(s)s.", s=str(message.status)), "status"
        )
    db.session.commit()
    return jsonify(presenters.to_json(message))
