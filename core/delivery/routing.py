"""Which provider carries a message: the operator's routes, enablement, health and weight."""

import random
from dataclasses import dataclass

import sqlalchemy as sa
from flask import g
from flask_babel import gettext as _

from core import configured, phones
from core.clinic import settings
from core.clinic.models import Patient
from core.db import db
from core.delivery import health, simulated
from core.delivery.providers import (
    CircuitBreaker,
    Provider,
    declared_provider,
    declared_providers,
)
from core.errors import NotFound, ValidationError
from core.phones import is_test_number
from core.plugins import enabled_plugins, hooks_for
from tenants import provisioning
from tenants.models import ProviderRoute

breaker = CircuitBreaker()  # per worker process: health is what this worker has seen


@dataclass(frozen=True)
class Route:
    provider: str
    plugin: str
    priority: int
    weight: int


def routes(tenant, channel: str) -> list[Route]:
    """The providers able to carry ``channel`` for ``tenant``, best first.

    The operator's routes for the country when there are some; else every provider of an
    enabled plugin for that channel, by name. Remembered as :mod:`core.configured` says.
    """
    cache = g.setdefault("_relais_routes", {})
    if (tenant.id, channel) not in cache:
        cache[(tenant.id, channel)] = configured.remembered(
            ("routes", tenant.id, tenant.country_code, channel), lambda: _routes(tenant, channel)
        )
    return cache[(tenant.id, channel)]


def _routes(tenant, channel: str) -> list[Route]:
    enabled = enabled_plugins(tenant)
    usable = {
        name: declared.plugin
        for name, declared in declared_providers().items()
        if declared.channel == channel and declared.plugin in enabled
    }
    with db.session.no_autoflush:
        configured = db.session.scalars(
            sa.select(ProviderRoute).where(
                ProviderRoute.country_code == tenant.country_code, ProviderRoute.channel == channel
            )
        ).all()
    if configured:
        found = [
            Route(r.provider, usable[r.provider], r.priority, r.weight)
            for r in configured
            if r.provider in usable
        ]
    else:
        found = [Route(name, plugin, 1, 100) for name, plugin in sorted(usable.items())]
    return sorted(found, key=lambda r: r.priority)


SIMULATOR = Route(simulated.NAME, "core", 1, 100)


def routes_for(tenant, message, channel: str, to: str | None) -> list[Route]:
    """The routes of ``message`` on ``channel`` to ``to``: the simulator's alone when it must
    not leave (written with a test key, or to a documented test number), else
    :func:`routes`."""
    if message.key_kind == "test" or is_test_number(to):
        return [SIMULATOR]
    return routes(tenant, channel)


def choose(candidates: list[Route]) -> Route | None:
    """The best priority among healthy candidates; weight shares traffic within it, each
    weight times its provider's health factor (:func:`core.delivery.health.factors`).

    A route of weight 0 is a standby: it carries nothing while a route of its priority
    with a weight is healthy, and shares equally with the other standbys when none is.
    """
    healthy = [r for r in candidates if breaker.available(r.provider)]
    if not healthy:
        return None
    best = min(r.priority for r in healthy)
    tier = [r for r in healthy if r.priority == best]
    if len(tier) == 1:
        return tier[0]
    weighted = [r for r in tier if r.weight > 0]
    if not weighted:
        return random.choice(tier)
    if len(weighted) == 1:
        return weighted[0]
    factor = health.factors()
    weights = [r.weight * factor.get(r.provider, 1.0) for r in weighted]
    return random.choices(weighted, weights=weights)[0]


def provider(tenant, route: Route) -> Provider:
    """An instance of the route's provider with its plugin's settings for the country
    (one per application context: a job, a request)."""
    if route == SIMULATOR:
        return simulated.Simulator()
    return provider_for_country(route.provider, tenant.country_code)


def provider_for_country(name: str, country_code: str) -> Provider:
    """An instance of the provider ``name`` with its plugin's settings for the country
    (declared defaults, then the country's values), one per application context."""
    cache = g.setdefault("_relais_providers", {})
    key = (country_code, name)
    if key not in cache:
        declared = declared_providers()[name]
        values = {s.name: s.default for s in settings.schema(declared.plugin)}
        with db.session.no_autoflush:
            values.update(settings.stored(country_code, declared.plugin))
        cache[key] = declared.provider(settings=values)
    return cache[key]


def senders(tenant, channel: str, purpose: str) -> list[tuple[str, str | None]]:
    """(provider, sender) for each route of ``channel``: who a message of ``purpose`` would
    come from (regulation plugins check sender IDs against their country's rules)."""
    return [(r.provider, provider(tenant, r).sender(purpose)) for r in routes(tenant, channel)]


def address(tenant, patient: Patient, channel: str) -> str | None:
    """Where ``patient`` can receive on ``channel``, or None if they cannot.

    Phones and e-mail are the patient's own fields; other channels (push) ask the channel
    plugins (``relais_channel_address``).
    """
    if channel == "email":
        return patient.email
    if channel in ("sms", "voice") and patient.phone:
        if channel == "voice" or is_test_number(patient.phone):
            return patient.phone
        # No SMS to a landline; the line is known since the phone was set (a row written
        # before it was stored, or around the ORM, is read from the number).
        line = patient.phone_line or phones.line_type(patient.phone)
        return patient.phone if line == phones.MOBILE else None
    if channel in ("sms", "voice"):
        return None
    return hooks_for(tenant).relais_channel_address(tenant=tenant, patient=patient, channel=channel)


def address_sql(tenant, channel: str) -> sa.ColumnElement[bool]:
    """The patients who have an address on ``channel``, as an SQL condition on
    :class:`Patient` (for counts in the database): a phone for SMS and voice, an e-mail
    address, else what the channel plugins say (``relais_channel_address_sql``; none: no
    patient)."""
    if channel in ("sms", "voice"):
        return Patient.phone.isnot(None)
    if channel == "email":
        return Patient.email.isnot(None)
    found = hooks_for(tenant).relais_channel_address_sql(tenant=tenant, channel=channel)
    return sa.false() if found is None else found


def preview(tenant, channel: str, text: str, subject: str | None, language: str) -> dict:
    """What a patient would see or hear on ``channel`` (see :meth:`Provider.preview`), as the
    clinic's first route for it shapes it; the text as it is without any route."""
    found = routes(tenant, channel)
    if not found:
        return {"text": text}
    return provider(tenant, found[0]).preview(text, subject, language)


def best_channels(tenant, patient: Patient) -> list[str]:
    """The channels ``patient`` can be told something on, best first: their device's
    notifications if they turned them on, e-mail, SMS to a mobile, else a call to a landline
    (the outbox puts a channel the patient prefers first). Empty: no way to reach them.
    """
    found = []
    if address(tenant, patient, "push"):
        found.append("push")
    if patient.email:
        found.append("email")
    if address(tenant, patient, "sms"):
        found.append("sms")
    elif address(tenant, patient, "voice"):
        found.append("voice")
    return found


def configured_routes(country_code: str | None = None) -> list[ProviderRoute]:
    """The operator's routes, by country, channel and priority."""
    stmt = sa.select(ProviderRoute).order_by(
        ProviderRoute.country_code,
        ProviderRoute.channel,
        ProviderRoute.priority,
        ProviderRoute.provider,
    )
    if country_code:
        stmt = stmt.where(ProviderRoute.country_code == country_code.upper())
    return list(db.session.scalars(stmt))


def set_route(country_code: str, provider: str, priority: int, weight: int) -> ProviderRoute:
    """Route a country's traffic of the provider's channel to it (or change its place).

    :raises ValidationError: unknown provider, priority below 1, weight outside 0..1000.
    """
    declared = declared_provider(provider)
    if declared is None:
        raise ValidationError(_("No provider is named %(name)s.", name=provider), "provider")
    if not isinstance(priority, int) or priority < 1:
        raise ValidationError(_("The priority is a whole number from 1 (first)."), "priority")
    if not isinstance(weight, int) or not 0 <= weight <= 1000:
        raise ValidationError(_("The weight is a whole number from 0 to 1000."), "weight")
    code = provisioning.country(country_code).code
    channel = declared[1].channel
    route = db.session.get(ProviderRoute, (code, channel, provider)) or ProviderRoute(
        country_code=code, channel=channel, provider=provider
    )
    route.priority, route.weight = priority, weight
    db.session.add(route)
    return route


def remove_route(country_code: str, provider: str) -> None:
    """Stop routing a country's traffic to a provider. :raises NotFound."""
    route = db.session.scalar(
        sa.select(ProviderRoute).where(
            ProviderRoute.country_code == (country_code or "").upper(),
            ProviderRoute.provider == provider,
        )
    )
    if route is None:
        raise NotFound(_("No such route."), "provider")
    db.session.delete(route)
