"""France: French locale, emergency numbers 15 (SAMU) and 112."""

from flask_babel import lazy_gettext as _l

from core import hookimpl
from core.regulation import CountryProfile

kind = "regulation"
description = _l("France: French locale, emergency numbers 15 (SAMU) and 112.")

PROFILE = CountryProfile(locale="fr", emergency_number="112", medical_emergency_number="15")


@hookimpl
def relais_country_profile(country_code):
    return PROFILE if country_code == "FR" else None
