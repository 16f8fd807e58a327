"""FHIR R4 answers, for the features that serve FHIR resources: the media type, and errors
as ``OperationOutcome`` resources naming the field."""

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

from core.db import db
from core.errors import DomainError
from core.web.openapi import api_operation, api_schema

MEDIA_TYPE = "application/fhir+json"
ISSUE_CODES = {401: "security", 403: "forbidden", 404: "not-found", 422: "invalid"}


OUTCOME = api_schema(
    "OperationOutcome",
    {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {"type": "string"},
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                        "expression": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
)


def fhir_resource(name: str) -> dict:
    """The OpenAPI schema of a FHIR resource or a searchset ``Bundle`` of them, by its
    ``resourceType`` (the FHIR specification describes the rest; tests validate it)."""
    resource = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": name}, "id": {"type": "string"}},
    }
    return api_schema(f"Fhir{name}", resource)


def fhir_operation(summary: str, *, answers: dict, **options) -> Callable:
    """:func:`core.web.openapi.api_operation` for a FHIR route: tagged ``FHIR``, answers in
    ``application/fhir+json``, errors as ``OperationOutcome``."""
    return api_operation(
        summary, tag="FHIR", answers=answers, media_type=MEDIA_TYPE, error_schema=OUTCOME, **options
    )


def instant(value: datetime) -> str:
    """A FHIR instant in UTC, to the second: ``2026-03-30T07:00:00Z``."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def fhir_json(payload: dict, status: int = 200):
    """``payload`` as a FHIR JSON answer (``application/fhir+json``)."""
    response = jsonify(payload)
    response.status_code = status
    response.mimetype = MEDIA_TYPE
    return response


def outcome(status: int, message: str, field: str | None = None):
    """An error as an ``OperationOutcome``: its issue names ``field`` when there is one."""
    issue = {
        "severity": "error",
        "code": ISSUE_CODES.get(status, "processing"),
        "diagnostics": message,
    }
    if field:
        issue["expression"] = [field]
    return fhir_json({"resourceType": "OperationOutcome", "issue": [issue]}, status)


def answer_errors_as_fhir(bp: Blueprint) -> None:
    """Make every error of ``bp``'s routes an ``OperationOutcome``: a refusal of the domain
    (its transaction rolled back) and HTTP errors alike."""

    @bp.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        db.session.rollback()
        return outcome(exc.status, exc.message, exc.field)

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return outcome(exc.code or 500, exc.description or exc.name)
