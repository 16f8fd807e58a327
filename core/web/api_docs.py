"""The API's contract for integrators, on each clinic's subdomain, without a key:
``/api/v1/openapi.json`` (OpenAPI 3.1) and ``/api/v1/docs`` (the same, as a page)."""

import json

from flask import Blueprint, abort, g, jsonify, render_template

from core.config import external_url
from core.plugins import enabled_plugins, own_version
from core.web import openapi

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")


def _clinic_document() -> dict:
    tenant = g.get("tenant")
    if tenant is None:
        abort(404)
    enabled = enabled_plugins(tenant)
    server = external_url("api.patient_list").removesuffix("/api/v1/patients")
    return openapi.document(server, enabled.__contains__, own_version())


@bp.get("/openapi.json")
def contract():
    return jsonify(_clinic_document())


@bp.get("/docs")
def reference():
    document = _clinic_document()
    groups: dict[str, list] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            groups.setdefault(operation["tags"][0], []).append((method.upper(), path, operation))
    return render_template(
        "api/reference.html",
        document=document,
        groups=sorted(groups.items()),
        schemas=document["components"]["schemas"],
        pretty=lambda value: json.dumps(value, indent=2, ensure_ascii=False),
    )
