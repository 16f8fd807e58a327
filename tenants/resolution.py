"""The tenant of a request, taken once from its Host header.

Clinic routes live on ``<slug>.<SERVER_NAME>``; the operator console on
``operator.<SERVER_NAME>``. An unknown subdomain is a 404: better than revealing or
corrupting another clinic's data. A suspended clinic answers 403 on every page and API call
(the operator console, on its own subdomain, still works).
"""

import sqlalchemy as sa
from flask import Flask, abort, current_app, g, has_request_context, request
from flask_babel import gettext as _

from core.db import db
from core.errors import Forbidden
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
        if tenant.suspended_at is not None:
            raise Forbidden(
                _("This clinic is suspended. Its Relais operator can tell you more."), "tenant"
            )
        g.tenant = tenant
        scoping.enter(tenant.id)

    @app.url_defaults
    def keep_tenant(endpoint, values):
        if "tenant" in values or not app.url_map.is_endpoint_expecting(endpoint, "tenant"):
            return
        tenant = g.get("tenant")
        if tenant is not None:
            values["tenant"] = tenant.slug
        elif endpoint == "static" and has_request_context() and host_subdomain():
            # A page with no clinic resolved (a suspended clinic's): its files from its host.
            values["tenant"] = host_subdomain()
        else:
            values["tenant"] = OPERATOR

    @app.teardown_request
    def leave(exc=None):
        scoping.leave()


def host_subdomain() -> str:
    """The subdomain of this request's host ("" on the bare domain)."""
    host, server = request.host.lower(), current_app.config["SERVER_NAME"].lower()
    return host[: -len(server) - 1] if host.endswith(f".{server}") else ""


def on_main_domain() -> bool:
    """Whether this request is on the bare domain (the sign-up pages)."""
    return (
        has_request_context() and request.host.lower() == current_app.config["SERVER_NAME"].lower()
    )
