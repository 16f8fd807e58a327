"""The JSON Schemas of the core API's bodies and answers, named in its OpenAPI document.

They say what the views accept and answer; the views still check every field themselves
(their messages name the field), and schemathesis checks in CI that answers match these.
"""

from core.clinic.models import ConsentAction, ConsentMethod, PatientAttribute
from core.delivery.models import MessageStatus
from core.vocabulary import CHANNELS, LANGUAGES, PURPOSES, SEXES
from core.web.openapi import api_schema

TEXT = {"type": "string"}
MAYBE_TEXT = {"type": ["string", "null"]}
ID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, with its offset"}
MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
CHANNEL = {"type": "string", "enum": list(CHANNELS)}
STATUS = {"type": "string", "enum": [str(s) for s in MessageStatus]}


def _object(properties: dict, required: tuple[str, ...] = (), closed: bool = False) -> dict:
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


PATIENT_FIELDS = {
    "first_name": {"type": "string", "minLength": 1, "maxLength": 100},
    "last_name": {"type": "string", "minLength": 1, "maxLength": 100},
    "phone": {"type": ["string", "null"], "examples": ["+33612345678"]},
    "email": {"type": ["string", "null"], "format": "email"},
    "birth_date": {"type": ["string", "null"], "format": "date"},
    "sex": {
        "type": ["string", "null"],
        "enum": [*SEXES, None],
        "description": "Administrative sex, as FHIR's Patient.gender.",
    },
    "language": {"type": "string", "enum": list(LANGUAGES)},
    "timezone": {"type": "string", "examples": ["Europe/Paris"]},
    "preferred_channel": {"type": ["string", "null"], "enum": [*CHANNELS, None]},
    "attributes": {"type": "array", "items": {"enum": [str(a) for a in PatientAttribute]}},
    "practitioner_ids": {"type": "array", "items": ID},
}
PATIENT = api_schema(
    "Patient",
    _object(
        {"id": ID, **PATIENT_FIELDS, "created_at": TIME, "updated_at": TIME},
        required=("id", "first_name", "last_name", "created_at", "updated_at"),
    ),
)
NEW_PATIENT = api_schema(
    "NewPatient", _object(PATIENT_FIELDS, required=("first_name", "last_name"), closed=True)
)
PATIENT_CHANGE = api_schema("PatientChange", _object(PATIENT_FIELDS, closed=True))
PATIENT_PAGE = api_schema(
    "PatientPage",
    _object(
        {
            "patients": {"type": "array", "items": PATIENT},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
        },
        required=("patients", "total", "page"),
    ),
)

CONSENT_STATE = {
    "status": TEXT,
    "at": MAYBE_TIME,
    "method": MAYBE_TEXT,
}
CONSENTS = api_schema(
    "Consents",
    _object(
        {
            "channels": {"type": "object", "additionalProperties": _object(CONSENT_STATE)},
            "history": {
                "type": "array",
                "items": _object(
                    {
                        "id": ID,
                        "channel": CHANNEL,
                        "action": TEXT,
                        "method": TEXT,
                        "actor": MAYBE_TEXT,
                        "at": TIME,
                    }
                ),
            },
        },
        required=("channels", "history"),
    ),
)
CONSENT_STEP = api_schema(
    "ConsentStep",
    _object(
        {
            "channel": CHANNEL,
            "action": {"type": "string", "enum": [str(a) for a in ConsentAction]},
            "method": {"type": "string", "enum": [str(m) for m in ConsentMethod]},
        },
        required=("channel", "action"),
        closed=True,
    ),
)
CONSENT_RESULT = api_schema(
    "ConsentResult",
    _object(
        {"channel": CHANNEL, **CONSENT_STATE, "changed": {"type": "boolean"}},
        required=("channel", "status", "changed"),
    ),
)

VERDICT = api_schema(
    "Verdict",
    _object(
        {
            "action": MAYBE_TEXT,
            "reason": MAYBE_TEXT,
            "rule": MAYBE_TEXT,
            "plugin": MAYBE_TEXT,
            "until": MAYBE_TIME,
        },
        required=("action", "reason", "rule", "plugin", "until"),
    ),
)
_TEMPLATE = {
    "description": "The text, with {variables}; or one text per language.",
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "additionalProperties": {"type": "string"}},
    ],
}
_NEW_MESSAGE_FIELDS = {
    "patient_id": ID,
    "purpose": {"type": "string", "enum": list(PURPOSES)},
    "template": _TEMPLATE,
    "variables": {"type": "object", "additionalProperties": {"type": "string"}},
    "channels": {"type": "array", "items": CHANNEL, "description": 'empty: ["sms"]'},
    "not_before": {"anyOf": [TIME, {"enum": ["", None]}], "description": "empty: now"},
    "expires_at": {"anyOf": [TIME, {"enum": ["", None]}], "description": "empty: never"},
}
NEW_MESSAGE = api_schema(
    "NewMessage",
    _object(_NEW_MESSAGE_FIELDS, required=("patient_id", "purpose", "template"), closed=True),
)
QUEUED = api_schema(
    "QueuedMessage",
    _object({"id": ID, "status": STATUS, "verdict": VERDICT}, required=("id", "status", "verdict")),
)
BATCH = api_schema(
    "MessageBatch",
    _object(
        {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": _object(
                    {
                        **_NEW_MESSAGE_FIELDS,
                        # Judged per message: another value is that message's error, the
                        # rest of the batch goes on.
                        "purpose": {"type": "string", "examples": list(PURPOSES)},
                        "channels": {"type": "array", "items": {"type": "string"}},
                        "reference": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 100,
                            "description": "Yours: a message sent again with it is not "
                            "written twice.",
                        },
                    },
                    required=("patient_id", "purpose", "template"),
                    closed=True,
                ),
            }
        },
        required=("messages",),
        closed=True,
    ),
)
BATCH_RESULT = api_schema(
    "MessageBatchResult",
    _object(
        {
            "messages": {
                "type": "array",
                "items": _object(
                    {
                        "index": {"type": "integer", "minimum": 0},
                        "reference": MAYBE_TEXT,
                        "id": ID,
                        "status": STATUS,
                        "verdict": VERDICT,
                        "error": {"$ref": "#/components/schemas/ErrorDetail"},
                    },
                    required=("index", "reference"),
                ),
            },
            "accepted": {"type": "integer", "minimum": 0},
            "refused": {"type": "integer", "minimum": 0},
        },
        required=("messages", "accepted", "refused"),
    ),
)
MESSAGE = api_schema(
    "Message",
    _object(
        {
            "id": ID,
            "patient_id": {"type": ["string", "null"], "format": "uuid"},
            "purpose": TEXT,
            "status": STATUS,
            "channels": {"type": "array", "items": CHANNEL},
            "channel": {"type": ["string", "null"]},
            "provider": MAYBE_TEXT,
            "key_kind": {
                "enum": ["live", "test", "team", None],
                "description": "The kind of API key that wrote it; null when none did",
            },
            "verdict": VERDICT,
            "not_before": MAYBE_TIME,
            "expires_at": MAYBE_TIME,
            "created_at": MAYBE_TIME,
            "sent_at": MAYBE_TIME,
            "delivered_at": MAYBE_TIME,
            "events": {
                "type": "array",
                "items": _object({"at": MAYBE_TIME, "status": TEXT, "detail": MAYBE_TEXT}),
            },
            "attempts": {
                "type": "array",
                "items": _object(
                    {
                        "at": MAYBE_TIME,
                        "channel": TEXT,
                        "provider": MAYBE_TEXT,
                        "outcome": MAYBE_TEXT,
                        "latency_ms": {"type": ["integer", "null"]},
                        "error": MAYBE_TEXT,
                    }
                ),
            },
        },
        required=("id", "status", "verdict", "events", "attempts"),
    ),
)
