"""What stops a country's clinics from sending as they should, said to its operator.

The core warns of a country with clinics but no regulation plugin (its clinics can send only
transactional messages: :func:`core.delivery.outbox.judge` fails closed); the plugins enabled
for a country add their own warnings (``relais_country_warnings``); a country open to self
sign-up without a plugin proving phones (``relais_activation_step``) is warned of too.
"""

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.i18n import country_name
from core.plugins import CountryPlugin, country_plugins_enabled, hooks_for_country, host
from tenants.models import Country, Tenant


def country_warnings(country: Country, has_clinics: bool | None = None) -> list[str]:
    """The warnings for one country's operator, each a sentence naming the country.

    :param has_clinics: whether the country has clinics (looked up when not given): without
        any, a missing regulation plugin stops no one.
    """
    if has_clinics is None:
        has_clinics = (
            db.session.scalar(
                sa.select(Tenant.id).where(Tenant.country_code == country.code).limit(1)
            )
            is not None
        )
    enabled = country_plugins_enabled(country.code)
    found = []
    if has_clinics and not any(host().info[name].kind == "regulation" for name in enabled):
        found.append(
            _(
                "%(country)s: no regulation plugin is enabled, so its clinics can send only "
                "transactional messages (codes, reminders, replies); campaigns are refused.",
                country=country_name(country.code),
            )
        )
    if (
        country.self_signup
        and not hooks_for_country(country.code).relais_activation_step.get_hookimpls()
    ):
        found.append(
            _(
                "%(country)s: self sign-up is open, but no plugin enabled there proves a new "
                "clinic's phone by a code (otp), so sign-ups are refused.",
                country=country_name(country.code),
            )
        )
    if enabled:
        answers = hooks_for_country(country.code).each(
            "relais_country_warnings", country_code=country.code
        )
        for plugin, sentences in answers:
            for sentence in sentences or ():
                found.append(
                    _(
                        "%(country)s, %(plugin)s: %(warning)s",
                        country=country_name(country.code),
                        plugin=host().info[plugin].title,
                        warning=sentence,
                    )
                )
    return found


def all_country_warnings() -> list[str]:
    """The warnings of every country with clinics, enabled plugins or open sign-up, by name."""
    with_clinics = set(db.session.scalars(sa.select(Tenant.country_code).distinct()))
    with_plugins = set(db.session.scalars(sa.select(CountryPlugin.country_code).distinct()))
    with_plugins |= set(db.session.scalars(sa.select(Country.code).where(Country.self_signup)))
    found = []
    for country in db.session.scalars(
        sa.select(Country)
        .where(Country.code.in_(with_clinics | with_plugins))
        .order_by(Country.name)
    ):
        found += country_warnings(country, country.code in with_clinics)
    return found
