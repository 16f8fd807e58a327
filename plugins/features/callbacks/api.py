"""The callback endpoint through the API, ``/api/v1/callbacks``: practice software registers
itself, rotates its secret, reads the delivery log. The same functions as the settings page
(:mod:`.endpoints`), the same checks (https only, no private address: 422 naming ``url``).

Any key of the clinic reads; only a live key changes the endpoint (test and team keys are
handed to developers and staging systems, and the endpoint receives the live traffic).
"""

from flask import g, jsonify, request
from flask_babel import gettext as _

from core.plugin_api import (
    Forbidden,
    NotFound,
    ValidationError,
    api_blueprint,
    api_operation,
    api_schema,
    check,
    db,
)
from plugins.features.callbacks import endpoints
from plugins.features.callbacks.delivery import endpoint
from plugins.features.callbacks.models import MAX_URL

PAGE_SIZE = 50

bp = api_blueprint("callbacks_api", __name__, "/api/v1/callbacks")

_WHEN = {"type": "string", "format": "date-time"}
_ENDPOINT_FIELDS = {
    "url": {"type": "string", "maxLength": MAX_URL, "examples": ["https://pms.example/relais"]},
    "created_at": _WHEN,
    "previous_secret_until": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "Until when the secret before the last rotation still signs too",
    },
}
CALLBACK_ENDPOINT = api_schema(
    "CallbackEndpoint",
    {"type": "object", "required": list(_ENDPOINT_FIELDS), "properties": _ENDPOINT_FIELDS},
)
CALLBACK_SECRET = api_schema(
    "CallbackEndpointWithSecret",
    {
        "type": "object",
        "required": [*_ENDPOINT_FIELDS, "secret"],
        "properties": {
            **_ENDPOINT_FIELDS,
            "secret": {
                "type": "string",
                "description": "The signing secret: given this once, keep it",
                "examples": ["whsec_..."],
            },
        },
    },
)
CALLBACK_URL = api_schema(
    "CallbackUrl",
    {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {"url": {"type": "string", "maxLength": MAX_URL}},
    },
)
DELIVERY = {
    "type": "object",
    "required": ["id", "at", "event_id", "type", "subject_id", "url", "status_code", "error"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "at": _WHEN,
        "event_id": {"type": "string", "format": "uuid"},
        "type": {"type": "string", "enum": ["message.status", "reply.received"]},
        "subject_id": {"type": "string", "format": "uuid", "description": "message or reply"},
        "status": {"type": ["string", "null"], "description": "the message's, if one"},
        "url": {"type": "string"},
        "status_code": {"type": ["integer", "null"], "description": "the endpoint's answer"},
        "latency_ms": {"type": "integer", "minimum": 0},
        "error": {
            "type": ["string", "null"],
            "description": "`HTTP 500`, a network error, or `refused:private`, "
            "`refused:unresolved`, `refused:scheme` (the address was not called)",
        },
    },
}
DELIVERY_PAGE = api_schema(
    "CallbackDeliveryPage",
    {
        "type": "object",
        "required": ["deliveries", "total", "page"],
        "properties": {
            "deliveries": {"type": "array", "items": DELIVERY},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
        },
    },
)
# What a registered endpoint leads to (OpenAPI links: stateful tests follow them).
_READ_IT = {"ReadCallbackEndpoint": ("callbacks_api.endpoint_read", {})}
_FOLLOW = {
    **_READ_IT,
    "RotateCallbackSecret": ("callbacks_api.endpoint_rotate", {}),
    "ReadCallbackDeliveries": ("callbacks_api.delivery_list", {}),
    "RemoveCallbackEndpoint": ("callbacks_api.endpoint_delete", {}),
}


def _iso(at) -> str | None:
    return at.isoformat() if at else None


def _endpoint_json(current, secret: str | None = None) -> dict:
    body = {
        "url": current.url,
        "created_at": _iso(current.created_at),
        "previous_secret_until": _iso(current.previous_until),
    }
    return {**body, "secret": secret} if secret else body


def _current():
    current = endpoint()
    if current is None:
        raise NotFound(_("No callback endpoint is registered."))
    return current


def _live_key_only() -> None:
    if g.api_key.kind != "live":
        raise Forbidden(_("Only a live key changes the callback endpoint."))


@bp.get("")
@api_operation(
    "Read the callback endpoint (never its secret)",
    tag="Callbacks",
    answers={200: CALLBACK_ENDPOINT},
    errors=(404,),
)
def endpoint_read():
    return jsonify(_endpoint_json(_current()))


@bp.put("")
@api_operation(
    "Register the callback endpoint, or change its address",
    tag="Callbacks",
    body=CALLBACK_URL,
    answers={200: CALLBACK_ENDPOINT, 201: CALLBACK_SECRET},
    errors=(403,),
    links={200: _FOLLOW, 201: _FOLLOW},
)
def endpoint_save():
    """A new endpoint answers 201 with its signing secret, given this once; a registered one
    takes the new address (200) and keeps its secret. The address must be https and lead to
    public addresses only: else 422 naming ``url``, and nothing changes."""
    _live_key_only()
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError(_("Send a JSON object."), "body")
    secret = endpoints.save_url(g.tenant, data.get("url"))
    db.session.commit()
    return jsonify(_endpoint_json(_current(), secret)), (201 if secret else 200)


@bp.delete("")
@api_operation(
    "Remove the callback endpoint: nothing is sent any more",
    tag="Callbacks",
    answers={204: None},
    errors=(403, 404),
)
def endpoint_delete():
    _live_key_only()
    _current()
    endpoints.remove()
    db.session.commit()
    return "", 204


@bp.post("/rotate")
@api_operation(
    "Give the callback endpoint a new secret (the previous one signs too for 24 hours)",
    tag="Callbacks",
    answers={200: CALLBACK_SECRET},
    errors=(403, 404),
    links={200: _READ_IT},
)
def endpoint_rotate():
    """The new secret is given this once. For 24 hours each callback carries two signatures,
    one per secret, so the software can switch over without missing one."""
    _live_key_only()
    _current()
    secret = endpoints.rotate()
    db.session.commit()
    return jsonify(_endpoint_json(_current(), secret))


@bp.get("/deliveries")
@api_operation(
    "Read the delivery log: every attempt and the endpoint's answer, latest first, 50 a page",
    tag="Callbacks",
    query={"page": {"type": "integer", "minimum": 1, "maximum": 100_000}},
    answers={200: DELIVERY_PAGE},
)
def delivery_list():
    """Attempts are kept 30 days (see the delivery log's retention in docs/api.md); each read
    is in the clinic's audit log."""
    page = check.page(request.args.get("page"))
    rows, total = endpoints.delivery_log(PAGE_SIZE, (page - 1) * PAGE_SIZE)
    body = {
        "deliveries": [
            {
                "id": str(attempt.id),
                "at": _iso(attempt.at),
                "event_id": str(event.id),
                "type": event.kind,
                "subject_id": str(event.subject_id),
                "status": event.payload.get("status"),
                "url": attempt.url,
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
            }
            for attempt, event in rows
        ],
        "total": total,
        "page": page,
    }
    db.session.commit()
    return jsonify(body)
