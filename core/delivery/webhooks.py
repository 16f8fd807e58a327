"""Providers' webhooks: delivery receipts on the clinic's subdomain, replies on ``hooks.``.

Each call is authenticated as the provider's protocol allows (a signature, a shared secret):
a bad or missing one is a 401 and changes nothing; a malformed body is a 400.
"""

from flask import Blueprint, abort, current_app, g, request

from core import configured
from core.db import db
from core.delivery import receipts, routing
from core.delivery.providers import Provider, SignatureError, declared_provider
from core.plugins import enabled_plugins
from tenants import scoping

bp = Blueprint("webhooks", __name__)  # on clinic subdomains: receipts
inbound_bp = Blueprint("inbound", __name__)  # on hooks.<domain>: replies, per country


def _provider(name: str, country_code: str, tenant=None) -> Provider:
    declared = declared_provider(name)
    if declared is None or (tenant is not None and declared.plugin not in enabled_plugins(tenant)):
        abort(404)
    # Built once per process for CONFIG_SECONDS (its settings are remembered as long): a
    # webhook only checks and parses with it, and Twilio calls one a message and status.
    return configured.remembered(
        ("webhook provider", name, country_code),
        lambda: routing.provider_for_country(name, country_code),
    )


def _checked(provider: Provider) -> tuple[dict, bytes, dict]:
    headers, body, form = dict(request.headers), request.get_data(), request.form.to_dict()
    try:
        provider.verify(request.url, headers, body, form)
    except SignatureError:
        abort(401)
    return headers, body, form


@bp.post("/webhooks/<provider>/receipts", endpoint="receipts")
def receipts_hook(provider: str):
    instance = _provider(provider, g.tenant.country_code, g.tenant)
    headers, body, form = _checked(instance)
    try:
        reports = instance.parse_receipts(headers, body, form)
    except ValueError:
        abort(400)
    try:
        receipts.apply_together(provider, reports)  # committed, with other calls' reports
    except TimeoutError:
        abort(503)  # not committed yet: the provider sends it again, which changes nothing
    return "", 204


@inbound_bp.post("/webhooks/<provider>/<country>/inbound")
def inbound(provider: str, country: str):
    country = country.upper()
    instance = _provider(provider, country)
    headers, body, form = _checked(instance)
    try:
        replies = instance.parse_inbound(headers, body, form)
    except ValueError:
        abort(400)
    for reply in replies:
        with scoping.system_scope():
            if receipts.inbound_seen(provider, reply.provider_ref):
                continue  # a retry or a replay: kept once, where it first went
            tenant, patient_id = receipts.route_inbound(provider, instance.channel, country, reply)
        if tenant is None:
            current_app.logger.info("a reply from an unknown sender was dropped")
            continue
        with scoping.tenant_scope(tenant.id):
            receipts.keep_inbound(tenant, patient_id, provider, instance.channel, reply)
            db.session.commit()
    return "", 204
