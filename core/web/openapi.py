"""The API's contract: an OpenAPI 3.1 document built from the routes themselves.

Each view of ``/api/v1`` and ``/me/api`` carries its operation (:func:`api_operation`): a
summary, its body's and answers' JSON Schemas (named ones registered with
:func:`api_schema`) and the errors it gives. Paths, methods and path parameters come from
Flask's URL map, so the document cannot name a route that does not exist; a test fails when a
route has no operation, and schemathesis checks in CI that every answer matches its schema.

A clinic's document (``/api/v1/openapi.json`` on its subdomain) holds the routes of the core
and of the plugins enabled for it.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, request
from flask_babel import gettext as _

from core.errors import ValidationError

PREFIXES = ("/api/v1", "/me/api")
ERRORS = {
    400: "The body is not what this operation reads (not JSON, nested too deep).",
    401: "No valid credentials: send `Authorization: Bearer <key>` with a key of this clinic.",
    403: "The key may not do this (a team key sending to someone not of the staff, a test or "
    "team key changing the callback endpoint).",
    404: "No such resource in this clinic.",
    409: "The resource is in a state that does not allow it.",
    413: "The body is too large.",
    415: "The body is not JSON (`Content-Type: application/json`).",
    422: "A field is invalid; `error.field` names it.",
    429: "Too many requests: come back after `Retry-After` seconds.",
}
ERROR_DETAIL = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "examples": ["invalid"]},
        "message": {
            "type": "string",
            "description": "A sentence for a person, in the clinic's language",
        },
        "field": {"type": "string", "examples": ["patient_id"]},
        "retry_after": {
            "type": "integer",
            "description": "With a 429: seconds to wait, as the `Retry-After` header says",
        },
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
}

_schemas: dict[str, dict[str, Any]] = {"Error": ERROR, "ErrorDetail": ERROR_DETAIL}
ERROR_REF = "#/components/schemas/Error"


def api_schema(name: str, schema: dict[str, Any]) -> dict[str, str]:
    """Name a JSON Schema in the API's document (``components/schemas``) and return the
    ``$ref`` to use it in operations. A name means one schema: naming another under it is an
    error, caught when the plugin loads."""
    if _schemas.setdefault(name, schema) != schema:
        raise ValueError(f"two API schemas are named {name!r}")
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: dict[int, dict[str, Any] | None]
    body: dict[str, Any] | None = None
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    description: str | None = None
    public: bool = False
    media_type: str = "application/json"
    error_schema: dict[str, Any] = field(default_factory=lambda: {"$ref": ERROR_REF})
    links: dict[int, dict[str, tuple[str, dict[str, str]]]] = field(default_factory=dict)


def api_operation(
    summary: str,
    *,
    tag: str,
    answers: dict[int, dict[str, Any] | None],
    body: dict[str, Any] | None = None,
    query: dict[str, dict[str, Any]] | None = None,
    errors: Iterable[int] = (),
    public: bool = False,
    media_type: str = "application/json",
    error_schema: dict[str, Any] | None = None,
    links: dict[int, dict[str, tuple[str, dict[str, str]]]] | None = None,
) -> Callable:
    """Document a view of ``/api/v1`` or ``/me/api`` in the API's OpenAPI document.

    :param summary: what the operation does, in a line; the view's docstring, if any, is its
        description.
    :param tag: the group it is listed under (``Patients``, ``Messages``, ``FHIR``...).
    :param answers: the JSON Schema of each success status's body (None: no body).
    :param body: the JSON Schema of the request's body, if it reads one.
    :param query: the query parameters, each name with its JSON Schema.
    :param errors: the error statuses it gives besides those implied: 401 (unless
        ``public``), 404 (a path with parameters), 400, 413 and 422 (a body).
    :param public: True when no API key is needed (a patient's own calls).
    :param media_type: the answers' media type (FHIR's: see ``fhir_operation``).
    :param error_schema: the errors' schema, when not ``{"error": {...}}``.
    :param links: what a success answer leads to (OpenAPI links, which stateful tests
        follow): per status, each link's name with the target view's endpoint and its path
        parameters as runtime expressions, e.g. ``{201: {"ReadPatient":
        ("api.patient_read", {"patient_id": "$response.body#/id"})}}``. The document checks
        that the target exists and takes exactly those parameters.
    """

    def mark(view: Callable) -> Callable:
        view.openapi = Operation(
            summary=summary,
            tag=tag,
            answers=answers,
            body=body,
            query=query or {},
            errors=tuple(errors),
            description=_first_paragraph(view.__doc__),
            public=public,
            media_type=media_type,
            error_schema=error_schema or {"$ref": ERROR_REF},
            links=links or {},
        )
        return view

    return mark


def init_app(app: Flask) -> None:
    """Refuse an API call's query parameters its operation does not name, and whole numbers
    that are not (422 naming the first): a misspelt filter (``?pateint=``) would otherwise
    list everything. The views check the rest of each value."""

    @app.before_request
    def known_parameters():
        view = app.view_functions.get(request.endpoint or "")
        operation: Operation | None = getattr(view, "openapi", None)
        if operation is None or not request.args:
            return
        unknown = sorted(set(request.args) - set(operation.query))
        if unknown:
            raise ValidationError(_("Unknown parameter: %(name)s.", name=unknown[0]), unknown[0])
        for name, schema in operation.query.items():
            typed = "format" in schema or schema.get("type", "string") != "string"
            if typed and request.args.get(name) == "":  # "?to=": a value, not a default
                raise ValidationError(_("This field is required."), name)
            if schema.get("type") == "integer" and name in request.args:
                low, high = schema.get("minimum", 0), schema.get("maximum", 10**9)
                value = request.args[name]
                if not _WHOLE.fullmatch(value) or not low <= int(value) <= high:
                    raise ValidationError(
                        _("A whole number from %(low)d to %(high)d.", low=low, high=high), name
                    )


def documented_rules(app: Flask, enabled: Callable[[str], bool]) -> Iterable:
    """The URL map's API rules whose blueprint is the core's or an enabled plugin's."""
    owners = app.extensions["relais"].blueprint_owners
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIXES) or rule.endpoint.startswith("api_docs."):
            continue
        owner = owners.get(rule.endpoint.rpartition(".")[0])
        if owner is None or enabled(owner):
            yield rule


def document(server: str, enabled: Callable[[str], bool], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API served at ``server`` (a clinic's address)."""
    app = current_app
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(documented_rules(app, enabled), key=lambda r: r.rule):
        operation: Operation | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if operation is None:
            raise LookupError(f"{rule.endpoint} ({rule.rule}) has no api_operation")
        path, parameters = _path(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, operation, parameters
            )
    _check_links(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Relais API",
            "version": version,
            "description": "Messages, patients, consents and the features a clinic enabled. "
            'Errors are `{"error": {"code", "message", "field"}}`. Guide: docs/api.md.',
        },
        "servers": [{"url": server}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(_schemas.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key of the clinic (Settings › API keys).",
                }
            },
        },
    }


def _operation(endpoint: str, op: Operation, parameters: list[dict]) -> dict[str, Any]:
    errors = set(op.errors)
    if not op.public:
        errors.add(401)
    if parameters:
        errors.add(404)
    if op.body is not None:
        errors |= {400, 413, 422}
    if op.query:
        errors.add(422)
    responses: dict[str, Any] = {}
    for status, schema in sorted(op.answers.items()):
        answer: dict[str, Any] = {"description": _STATUS_NAMES.get(status, "Success")}
        if schema is not None:
            answer["content"] = {op.media_type: {"schema": schema}}
        if status in op.links:
            answer["links"] = {
                name: {"operationId": target.replace(".", "_"), "parameters": dict(values)}
                for name, (target, values) in sorted(op.links[status].items())
            }
        responses[str(status)] = answer
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERRORS[status],
            "content": {op.media_type: {"schema": op.error_schema}},
        }
    result: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if op.description:
        result["description"] = op.description
    query = [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in op.query.items()
    ]
    if parameters or query:
        result["parameters"] = parameters + query
    if op.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {op.media_type: {"schema": op.body}},
        }
    if op.public:
        result["security"] = []
    return result


def _check_links(paths: dict[str, dict[str, Any]]) -> None:
    """Each link leads to an operation of the document and gives each of its path
    parameters, and only those: a renamed view or parameter fails here, not silently."""
    operations = {
        op["operationId"]: {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
        for methods in paths.values()
        for op in methods.values()
    }
    for methods in paths.values():
        for op in methods.values():
            for answer in op["responses"].values():
                for name, link in answer.get("links", {}).items():
                    target = link["operationId"]
                    if target not in operations:
                        raise LookupError(f"{op['operationId']}: link {name} to no {target}")
                    if set(link["parameters"]) != operations[target]:
                        raise LookupError(
                            f"{op['operationId']}: link {name} gives {sorted(link['parameters'])}"
                            f", {target} takes {sorted(operations[target])}"
                        )


_WHOLE = re.compile(r"[0-9]{1,10}")
_STATUS_NAMES = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content"}
_PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _path(rule) -> tuple[str, list[dict[str, Any]]]:
    """``/patients/<uuid:patient_id>`` → ``/patients/{patient_id}`` and its parameter."""
    parameters = []
    for converter, name in _PARAMETER.findall(rule.rule):
        schema = {"type": "string", "format": "uuid"} if converter == "uuid" else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PARAMETER.sub(r"{\2}", rule.rule), parameters


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    return " ".join(doc.strip().split("\n\n")[0].split())
