"""Domain errors: a message a user can act on, the field it concerns, an HTTP status."""


class DomainError(Exception):
    """A refusal with a sentence the user can act on and the ``field`` it concerns: the
    API answers ``{"error": {"code", "message", "field"}}`` with ``status``, pages show it,
    commands print it and exit with code 2."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field or "body"  # an empty key sent is the body's fault
        return {"error": error}


class ValidationError(DomainError):
    status = 422
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
