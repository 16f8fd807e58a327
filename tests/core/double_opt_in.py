"""A test regulation plugin: Germany, where a consent counts once the patient confirmed it.

It notes each consent step it hears of, as a country plugin would ask for the confirmation.
"""

from core import hookimpl
from core.regulation import CountryProfile

kind = "regulation"

PROFILE = CountryProfile(locale="de", emergency_number="112", double_opt_in=True)
heard: list[tuple[str, str, str]] = []  # (channel, action, actor) of each step recorded


@hookimpl
def relais_country_profile(country_code):
    return PROFILE if country_code == "DE" else None


@hookimpl
def relais_consent_recorded(tenant, consent):
    if tenant.country_code == "DE":
        heard.append((consent.channel, str(consent.action), consent.actor))
