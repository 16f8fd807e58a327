"""FHIR R4 answers, for the features that serve FHIR resources: the media type, and errors
as ``OperationOutcome`` resources naming the field."""

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

from core.db import db
from core.errors import DomainError

MEDIA_TYPE = "application/fhir+json"
ISSUE_CODES = {401: "security", 403: "forbidden", 404: "not-found", 422: "invalid"}


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
