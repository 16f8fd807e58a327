"""The tenant of a request, taken once from its Host header.

Clinic routes live on ``<slug>.<SERVER_NAME>``; the operator console on
``operator.<SERVER_NAME>``. An unknown subdomain is a 404: better than revealing or
corrupting another clinic's data.
"""

import sqlalchemy as sa
from flask import Flask, abort, g

from core.db import db
from tenants import scoping
from tenants.models import Tenant

OPERATOR = "operator"
RESERVED = frozenset({OPERATOR, "hooks", "www", "api", "admin", "static", "mail"})


def init_app(app: Flask) -> None:
    @app.url_value_preprocessor
    def resolve(endpoint, values):
        slug = values.pop("tenant", None) if values else None
        if slug is None or endpoint == "static":
            return
        tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            abort(404)
        g.tenant = tenant
        scoping.enter(tenant.id)

    @app.url_defaults
    def keep_tenant(endpoint, values):
        if "tenant" in values or not app.url_map.is_endpoint_expecting(endpoint, "tenant"):
            return
        tenant = g.get("tenant")
        values["tenant"] = tenant.slug if tenant is not None else OPERATOR

    @app.teardown_request
    def leave(exc=None):
        scoping.leave()
