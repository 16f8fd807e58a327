"""The tenant of a request, taken once from its Host header.

Clinic routes live on ``<slug>.<SERVER_NAME>``; the operator console on
``operator.<SERVER_NAME>``. An unknown subdomain is a 404: better than revealing or
corrupting another clinic's data. A suspended clinic answers 403 on every page and API call
(the operator console, on its own subdomain, still works).
"""

import sqlalchemy as sa
from flask import Flask, abort, current_app, g, has_request_context, request
from flask_babel import gettext as _
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from core import configured
from core.db import db
from core.errors import Forbidden
from tenants import scoping
from tenants.models import Country, Tenant

OPERATOR = "operator"
RESERVED = frozenset({OPERATOR, "hooks", "www", "api", "admin", "static", "mail"})


def init_app(app: Flask) -> None:
    @app.url_value_preprocessor
    def resolve(endpoint, values):
        slug = values.pop("tenant", None) if values else None
        if slug is None or endpoint == "static":
            return
        # The clinic's row and its country's are remembered by the process for
        # CONFIG_SECONDS (core.configured): a request reads neither, and its transaction
        # begins in the clinic's scope at once. A clinic changed or suspended in another
        # process is seen within those seconds; an unknown subdomain is never remembered.
        rows = _remembered(slug)
        if rows is None:
            abort(404)
        if rows[0]["suspended_at"] is not None:
            raise Forbidden(
                _("This clinic is suspended. Its Relais operator can tell you more."), "tenant"
            )
        scoping.enter(rows[0]["id"])  # before the session begins (attaching the row does)
        g.tenant = _attached(rows)

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


def clinic_at(slug: str) -> Tenant | None:
    """The clinic at ``slug`` in the current session, as a request resolves it: from the
    process's memory of its row (``CONFIG_SECONDS``), without a query most of the time. For
    work done outside the request, in the clinic's scope (:mod:`core.group_commit`)."""
    rows = _remembered(slug)
    return None if rows is None else _attached(rows)


def _remembered(slug: str) -> tuple[dict, dict] | None:
    return configured.remembered(("tenant", slug), lambda: _rows(slug), misses=False)


def _attached(rows: tuple[dict, dict]) -> Tenant:
    """The clinic of ``rows`` (:func:`_rows`) in the current session, as if a query had
    loaded it (without the query)."""
    session = db.session()
    tenant = session.identity_map.get(identity_key(Tenant, rows[0]["id"]))
    if tenant is not None:
        return tenant
    country = session.identity_map.get(identity_key(Country, rows[1]["code"]))
    if country is None:
        country = _loaded(Country, rows[1])
    tenant = _loaded(Tenant, {**rows[0], "country": country})
    session.add(tenant)  # and its country, through the relationship
    return tenant


def _loaded(cls, values: dict):
    """An instance of ``cls`` holding ``values``, detached, as a query would have loaded it:
    its attributes written as loading writes them, not through the constructor's
    instrumented setters and their events (building the clinic and its country that way
    was a tenth of a provider's webhook call)."""
    instance = sa.inspect(cls).class_manager.new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)  # its key from its columns; the rest loads lazily
    return instance


def _rows(slug: str) -> tuple[dict, dict] | None:
    """The columns of the clinic at ``slug`` and of its country."""
    tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        return None
    return _columns(tenant), _columns(tenant.country)


def _columns(row) -> dict:
    return {c.key: getattr(row, c.key) for c in sa.inspect(type(row)).column_attrs}


def host_subdomain() -> str:
    """The subdomain of this request's host ("" on the bare domain)."""
    host, server = request.host.lower(), current_app.config["SERVER_NAME"].lower()
    return host[: -len(server) - 1] if host.endswith(f".{server}") else ""


def on_main_domain() -> bool:
    """Whether this request is on the bare domain (the sign-up pages)."""
    return (
        has_request_context() and request.host.lower() == current_app.config["SERVER_NAME"].lower()
    )
