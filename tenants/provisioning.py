"""Creating clinics and switching plugins on and off for countries and clinics."""

import re

import sqlalchemy as sa
from flask_babel import gettext as _

from core import validation as check
from core.auth import hash_password
from core.db import db
from core.errors import Conflict, NotFound, ValidationError
from core.plugins import CountryPlugin, TenantDisabledPlugin, host
from tenants.models import Country, Operator, Tenant
from tenants.resolution import RESERVED

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def countries() -> list[Country]:
    return list(db.session.scalars(sa.select(Country).order_by(Country.name)))


def country(code: str) -> Country:
    found = db.session.get(Country, (code or "").upper())
    if found is None:
        raise ValidationError(_("Unknown country."), "country")
    return found


def create_tenant(name: str, slug: str, country_code: str, timezone: str | None = None) -> Tenant:
    """Create a clinic reachable at ``<slug>.<domain>``. :raises ValidationError, Conflict."""
    name = check.text(name, "name", 200)
    if not name:
        raise ValidationError(_("This field is required."), "name")
    slug = free_slug(slug)
    where = country(country_code)
    tz = check.timezone(timezone or where.timezone)
    tenant = Tenant(name=name, slug=slug, country_code=where.code, timezone=tz)
    db.session.add(tenant)
    db.session.flush()
    return tenant


def free_slug(slug: str) -> str:
    """``slug`` as a clinic's subdomain would store it, when a new clinic may take it.

    :raises ValidationError: on ``subdomain`` (not a valid name, or reserved).
    :raises Conflict: on ``subdomain`` when a clinic already has it.
    """
    slug = check.storable((slug or "").strip().lower(), "subdomain")
    if not SLUG.match(slug):
        raise ValidationError(
            _("Use lowercase letters, digits and hyphens (at most 63)."), "subdomain"
        )
    if slug in RESERVED:
        raise ValidationError(_("This subdomain is reserved."), "subdomain")
    if db.session.scalar(sa.select(Tenant.id).where(Tenant.slug == slug)):
        raise Conflict(_("This subdomain is taken."), "subdomain")
    return slug


def tenants() -> list[Tenant]:
    return list(db.session.scalars(sa.select(Tenant).order_by(Tenant.name)))


def tenant_by_slug(slug: str) -> Tenant:
    tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(_("No clinic has the subdomain %(slug)s.", slug=slug), "tenant")
    return tenant


def country_plugins(code: str) -> set[str]:
    return set(
        db.session.scalars(
            sa.select(CountryPlugin.plugin).where(CountryPlugin.country_code == code)
        )
    )


def set_country_plugin(code: str, plugin: str, enabled: bool) -> None:
    """Enable or disable a plugin for every clinic of a country."""
    code = country(code).code
    _known(plugin)
    row = db.session.get(CountryPlugin, (code, plugin))
    if enabled and row is None:
        db.session.add(CountryPlugin(country_code=code, plugin=plugin))
    elif not enabled and row is not None:
        db.session.delete(row)


def set_tenant_feature(tenant: Tenant, plugin: str, enabled: bool) -> None:
    """Let a clinic switch off (or back on) a feature its country enabled."""
    info = _known(plugin)
    if info.kind != "feature" or plugin not in country_plugins(tenant.country_code):
        raise ValidationError(_("This feature is not offered in your country."), "plugin")
    row = db.session.get(TenantDisabledPlugin, (tenant.id, plugin))
    if not enabled and row is None:
        db.session.add(TenantDisabledPlugin(tenant_id=tenant.id, plugin=plugin))
    elif enabled and row is not None:
        db.session.delete(row)


def set_tenant_language(tenant: Tenant, language: str, choices) -> None:
    """A clinic's default language (its pages, its new patients): one of ``choices``, or
    empty for its country's. :raises ValidationError: naming the field ``language``."""
    if language and language not in choices:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(choices)), "language")
    tenant.language = language or None


def disabled_features(tenant: Tenant) -> set[str]:
    return set(
        db.session.scalars(
            sa.select(TenantDisabledPlugin.plugin).where(
                TenantDisabledPlugin.tenant_id == tenant.id
            )
        )
    )


def _known(plugin: str):
    info = host().info.get(plugin)
    if info is None:
        raise ValidationError(_("No plugin is named %(name)s.", name=plugin), "plugin")
    return info


def create_operator(email: str, name: str, password: str):
    """Create an operator account (console at ``operator.<domain>``)."""
    # Lower-cased whole: the login form lower-cases what is typed before looking it up.
    email = (check.email(email) or "").lower()
    if not email:
        raise ValidationError(_("This field is required."), "email")
    if db.session.scalar(sa.select(Operator.id).where(Operator.email == email)):
        raise Conflict(_("An operator already uses this e-mail."), "email")
    operator = Operator(
        email=email,
        name=check.text(name, "name", 200) or email,
        password_hash=hash_password(password, (email, name)),
    )
    db.session.add(operator)
    db.session.flush()
    return operator
