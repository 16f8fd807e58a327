"""The JSON API for integrators (practice software), on each clinic's subdomain under /api/v1.

Every call carries ``Authorization: Bearer <key>``; a key is looked up only among the keys of
the clinic whose subdomain is called, so it works nowhere else. Errors are
``{"error": {"code", "message", "field"}}``.
"""

import uuid
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, g, jsonify, request
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _

from core import validation as check
from core.clinic import apikeys, consent, patients
from core.clinic.models import ConsentMethod
from core.db import db
from core.delivery import limits, log, outbox, presenters
from core.delivery.models import Message
from core.errors import Conflict, DomainError, Forbidden, ValidationError
from core.extensions import csrf
from core.group_commit import GroupCommit
from core.vocabulary import PURPOSES
from core.web import request_bodies
from core.web.api_schemas import (
    BATCH,
    BATCH_RESULT,
    CONSENT_RESULT,
    CONSENT_STEP,
    CONSENTS,
    MESSAGE,
    NEW_MESSAGE,
    NEW_PATIENT,
    PATIENT,
    PATIENT_CHANGE,
    PATIENT_PAGE,
    QUEUED,
)
from core.web.openapi import api_operation
from tenants import resolution
from tenants.scoping import tenant_scope

bp = Blueprint("api", __name__)


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


@bp.before_request
def authenticate():
    """Require an API key of the clinic (``Authorization: Bearer <key>``), else 401 JSON;
    the key acts in the request (``g.api_key``: its ``id``, ``tenant_id`` and ``kind``).
    Used with ``bp.before_request``.

    The key is remembered by the process for a few seconds (:func:`apikeys.key_for_token`)
    and its "last used" recorded at most once a minute (:func:`apikeys.note_use`): requests
    on one key read nothing to authenticate and never wait for each other."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    key = apikeys.key_for_token(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise Unauthorized(_("Send a valid API key: Authorization: Bearer <key>."))
    apikeys.note_use(key)  # at most once a minute, outside this request's transaction
    g.api_key = key


def api_blueprint(name: str, import_name: str, url_prefix: str) -> Blueprint:
    """A blueprint of JSON API routes for practice software, as the core's ``/api/v1``: no
    staff session (public to the session check), the clinic's API key required before each
    request (:func:`authenticate`), and no CSRF token (a bearer key, no cookie)."""
    blueprint = Blueprint(name, import_name, url_prefix=url_prefix)
    blueprint.relais_public = True
    blueprint.before_request(authenticate)
    csrf.exempt(blueprint)
    return blueprint


def _not_team(patient_id: uuid.UUID, field: str = "patient_id") -> Forbidden:
    """The refusal of a team key's message to someone who is not the clinic's staff."""
    return Forbidden(
        _("A team key sends only to the clinic's staff: this patient is not one of them."), field
    )


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError(_("Send a JSON object."), "body")
    return data


@bp.get("/patients")
@api_operation(
    "Search the clinic's patients, 50 a page",
    tag="Patients",
    query={
        "q": {"type": "string", "maxLength": 200},
        "page": {"type": "integer", "minimum": 1, "maximum": 100_000},
    },
    answers={200: PATIENT_PAGE},
)
def patient_list():
    page = check.page(request.args.get("page"))
    rows, total = patients.search_patients(request.args.get("q", ""), page)
    body = {"patients": [patients.to_json(p) for p in rows], "total": total, "page": page}
    db.session.commit()
    return jsonify(body)


@bp.post("/patients")
@api_operation(
    "Create a patient",
    tag="Patients",
    body=NEW_PATIENT,
    answers={201: PATIENT},
    links={
        201: {
            "ReadPatient": ("api.patient_read", {"patient_id": "$response.body#/id"}),
            "ChangePatient": ("api.patient_update", {"patient_id": "$response.body#/id"}),
            "ReadConsents": ("api.consent_list", {"patient_id": "$response.body#/id"}),
        }
    },
)
def patient_create():
    patient = patients.create_patient(g.tenant, _body())
    db.session.commit()
    return jsonify(patients.to_json(patient)), 201


@bp.get("/patients/<uuid:patient_id>")
@api_operation("Read a patient", tag="Patients", answers={200: PATIENT})
def patient_read(patient_id: uuid.UUID):
    body = patients.to_json(patients.get_patient(patient_id))
    db.session.commit()
    return jsonify(body)


@bp.patch("/patients/<uuid:patient_id>")
@api_operation(
    "Change a patient's fields (the others stay)",
    tag="Patients",
    body=PATIENT_CHANGE,
    answers={200: PATIENT},
)
def patient_update(patient_id: uuid.UUID):
    patient = patients.update_patient(g.tenant, patients.get_patient(patient_id), _body())
    db.session.commit()
    return jsonify(patients.to_json(patient))


@bp.get("/patients/<uuid:patient_id>/consents")
@api_operation("Read a patient's consents", tag="Consents", answers={200: CONSENTS})
def consent_list(patient_id: uuid.UUID):
    """A patient's consent on every channel, and every step of it (the proof)."""
    body = consent.to_json(patients.get_patient(patient_id))
    db.session.commit()
    return jsonify(body)


CONSENT_FIELDS = {"channel", "action", "method"}


@bp.post("/patients/<uuid:patient_id>/consents")
@api_operation(
    "Record a step of a patient's consent",
    tag="Consents",
    body=CONSENT_STEP,
    answers={200: CONSENT_RESULT, 201: CONSENT_RESULT},
)
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
@api_operation(
    "Queue a message to a patient",
    tag="Messages",
    body=NEW_MESSAGE,
    answers={202: QUEUED},
    errors=[403, 429],
    links={
        202: {
            "ReadMessage": ("api.message_read", {"message_id": "$response.body#/id"}),
            "CancelMessage": ("api.message_cancel", {"message_id": "$response.body#/id"}),
        }
    },
)
def message_create():
    """Queue a message to a patient; answers at once with its id (202), its status and what
    the country's rules said (a refusal's reason, a deferral's date).

    A test key's message never leaves (a simulator answers); a team key's goes only to the
    clinic's staff (403 on ``patient_id`` otherwise). Over the clinic's limits: 429 with
    ``Retry-After``, and nothing is written."""
    item = _message_item(_body(), "", MESSAGE_FIELDS)
    tenant, key = g.tenant, g.api_key
    # Written with the messages other requests of this process post meanwhile (see
    # core.group_commit): one transaction, one judging and one queue push for them all.
    answer = _queue_together((tenant.id, tenant.slug, key, str(get_locale())), item)
    if isinstance(answer, DomainError):
        raise answer
    return jsonify(answer), 202


def _queue_group(group: tuple, items: list[dict[str, Any]]) -> list[dict | DomainError]:
    """:data:`_queue_together`'s work: the messages of concurrent ``POST /messages`` of one
    clinic and key, written and committed together; each one's answer or error."""
    tenant_id, slug, key, locale = group
    with tenant_scope(tenant_id), force_locale(locale):
        tenant = resolution.clinic_at(slug)
        answers = [
            a if isinstance(a, DomainError) else _queued(a) for a in _queue(tenant, key, items)
        ]
        db.session.commit()
    return answers


# While posts come in a burst, the first of a transaction waits 10 ms for others to join it:
# in interleaved runs of bench.api (2 x 16 gunicorn, 32 connections), 0 -> 5 ms won 6 pairs
# of 8 (about a fifth more requests a second), 5 -> 10 ms 5 of 6, 10 -> 20 ms nothing more.
GATHER_SECONDS = 0.010
_queue_together = GroupCommit("relais-api-messages", _queue_group, gather=GATHER_SECONDS)


BATCH_FIELDS = MESSAGE_FIELDS | {"reference"}
BATCH_MAX = 1000  # messages per batch
BATCH_BYTES = 4 << 20  # a batch's body: 1,000 messages of up to ~4 KB each
REFERENCE_LENGTH = 100


@bp.post("/messages/batch")
@api_operation(
    "Queue up to 1,000 messages",
    tag="Messages",
    body=BATCH,
    answers={202: BATCH_RESULT},
    errors=[429],
)
@request_bodies.body_limit(BATCH_BYTES)
def message_batch():
    """Queue up to 1,000 messages in one request, each judged as ``POST /messages`` judges
    one; answers 202 with, for each (in order), its id, status and verdict, or its error.

    A malformed request (not the shape below, a wrong type, a NUL character, a time
    without its offset, a reference given twice, too many messages or bytes) is refused
    whole with a 4xx naming the field (``messages[3].not_before``) and writes nothing. A
    message with a ``reference`` already used with this key is not written again: its answer
    is the first one's, so a batch sent again after a timeout creates nothing twice.
    Over the clinic's limits, the whole batch is refused (429 with ``Retry-After``).
    """
    data = _body()
    unknown = set(data) - {"messages"}
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError(_("Unknown field: %(field)s.", field=field), field)
    items = data.get("messages")
    if not isinstance(items, list) or not items:
        raise ValidationError(_("Send a list of messages."), "messages")
    if len(items) > BATCH_MAX:
        raise ValidationError(_("At most %(n)d messages a request.", n=BATCH_MAX), "messages")
    parsed = [_message_item(item, f"messages[{i}]", BATCH_FIELDS) for i, item in enumerate(items)]
    seen: dict[str, int] = {}
    for i, item in enumerate(parsed):
        reference = item.get("reference")
        if reference is not None and seen.setdefault(reference, i) != i:
            raise ValidationError(_("This reference is used twice."), f"messages[{i}].reference")
    answers = _queue(g.tenant, g.api_key, parsed)
    db.session.commit()
    body = [
        _batch_answer(i, a, item.get("reference"))
        for i, (item, a) in enumerate(zip(parsed, answers, strict=True))
    ]
    return jsonify(
        {
            "messages": body,
            "accepted": sum("id" in b for b in body),
            "refused": sum("error" in b for b in body),
        }
    ), 202


def _queue(tenant, key, items: list[dict[str, Any]]) -> list[Message | DomainError]:
    """Write the messages ``items`` (:func:`_message_item`'s) of API key ``key``, each judged;
    each one's message or error, in order. The caller commits.

    :raises OverLimit: when they are more than the clinic's limits leave (none written).
    """
    found = patients.for_sending({item["patient_id"] for item in items})
    staff = apikeys.staff_among(list(found.values())) if key.kind == "team" else None
    drafts, answers = [], [None] * len(items)
    for i, item in enumerate(items):
        patient = found.get(item["patient_id"])
        if patient is None:
            answers[i] = ValidationError(_("No such patient."), "patient_id")
        elif staff is not None and patient.id not in staff:
            answers[i] = _not_team(patient.id)
        else:
            draft = {k: v for k, v in item.items() if k != "patient_id"}
            drafts.append((i, {**draft, "patient": patient}))
    results = outbox.send_many(tenant, [d for _i, d in drafts], key.id, key.kind)
    for (i, _draft), result in zip(drafts, results, strict=True):
        answers[i] = result
    # Those written now (those a reference found are in the session already) count against
    # the limits: over one, OverLimit (429), and the error handler rolls back what was written.
    limits.take(tenant, [r for r in results if isinstance(r, Message) and sa.inspect(r).transient])
    return answers


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _message_item(item: Any, where: str, fields: set[str]) -> dict[str, Any]:
    """A message posted, its types checked: ``send_many``'s arguments (patient id still to
    look up). :raises ValidationError: naming the field (within ``where``, a batch's item)."""
    if not isinstance(item, dict):
        raise ValidationError(_("Send a JSON object."), where or "body")
    unknown = set(item) - fields
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError(_("Unknown field: %(field)s.", field=field), _at(where, field))
    try:
        patient_id = uuid.UUID(item.get("patient_id"))
    except (TypeError, ValueError, AttributeError):
        raise ValidationError(_("No such patient."), _at(where, "patient_id")) from None
    parsed: dict[str, Any] = {"patient_id": patient_id}
    purpose = item.get("purpose")
    if not isinstance(purpose, str):
        raise ValidationError(
            _("Choose one of: %(v)s.", v=", ".join(PURPOSES)), _at(where, "purpose")
        )
    parsed["purpose"] = purpose
    template = item.get("template")
    if not (
        isinstance(template, str)
        or isinstance(template, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in template.items())
    ):
        raise ValidationError(_("A message needs a text."), _at(where, "template"))
    parsed["template"] = template
    variables = item.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise ValidationError(_("Send an object of variables."), _at(where, "variables"))
    parsed["variables"] = variables or {}
    channels = item.get("channels")
    if channels is not None and not (
        isinstance(channels, list) and all(isinstance(c, str) for c in channels)
    ):
        raise ValidationError(_("Send a list of channels."), _at(where, "channels"))
    parsed["channels"] = channels or ["sms"]
    for name in ("not_before", "expires_at"):
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            raise ValidationError(_("Give an ISO 8601 time with its offset."), _at(where, name))
        parsed[name] = presenters.parse_time(value, _at(where, name))
    reference = item.get("reference")
    if reference is not None:
        if (
            not isinstance(reference, str)
            or not reference.strip()
            or len(reference) > REFERENCE_LENGTH
            or not reference.isprintable()
        ):
            raise ValidationError(
                _("Give a reference of 1 to %(n)d printable characters.", n=REFERENCE_LENGTH),
                _at(where, "reference"),
            )
        parsed["reference"] = reference
    return parsed


def _queued(message: Message) -> dict[str, Any]:
    """What the API answers of a message written: its id, status and verdict."""
    return {
        "id": str(message.id),
        "status": str(message.status),
        "verdict": presenters.verdict_json(message),
    }


def _batch_answer(index: int, result: Any, reference: str | None) -> dict[str, Any]:
    if isinstance(result, DomainError):
        error = result.as_json()["error"]
        if result.field:
            error["field"] = f"messages[{index}].{result.field}"
        return {"index": index, "reference": reference, "error": error}
    return {"index": index, "reference": reference, **_queued(result)}


@bp.get("/messages/<uuid:message_id>")
@api_operation("Read a message and its history", tag="Messages", answers={200: MESSAGE})
def message_read(message_id: uuid.UUID):
    """A message's status, with every status change and attempt timestamped; the read is
    audited, as the staff's page read is."""
    message, _patient = log.read_message(message_id)
    body = presenters.to_json(message)
    db.session.commit()  # the audit of the read
    return jsonify(body)


@bp.post("/messages/<uuid:message_id>/cancel")
@api_operation(
    "Cancel a message that has not left", tag="Messages", answers={200: MESSAGE}, errors=[409]
)
def message_cancel(message_id: uuid.UUID):
    """Cancel a message that has not left yet; 409 when it is too late."""
    message = presenters.find_message(message_id)
    if not outbox.cancel(message, "cancelled through the API"):
        raise Conflict(
            _("Too late to cancel: the message is %(s)s.", s=str(message.status)), "status"
        )
    db.session.commit()
    return jsonify(presenters.to_json(message))
