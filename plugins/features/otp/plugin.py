"""Sign-up and login by code: a 6-digit code by SMS (or a call) proves a phone number.

Patients sign up and log in on their clinic's subdomain (``/me/login``, JSON under
``/me/api/``); a new staff member proves their phone before enrolling their authenticator
app. Codes go on the ``otp`` queue, first of all. See docs/otp.md.
"""

from flask_babel import lazy_gettext as _l
from limits import parse_many

from core.plugin_api import (
    MenuItem,
    Setting,
    hookimpl,
)
from plugins.features.otp import views

kind = "feature"
name = _l("Patient sign-up and login by code")
description = _l(
    "Sign-up and login codes: patients sign up and log in with a code sent by SMS or read "
    "by a call; new staff prove their phone."
)


def _rate(text: str) -> str:
    try:
        parse_many(text)
    except ValueError:
        raise ValueError(_l("Write limits like: 10 per hour; 3 per minute")) from None
    return text


@hookimpl
def relais_register_blueprints():
    return [views.bp, views.api_bp]


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "codes_per_address",
            _l("Codes one internet address may ask for"),
            default="10 per hour; 3 per minute",
            parse=_rate,
            help=_l(
                "Over every number; each number also gets at most 5 codes an hour, "
                "30 seconds apart. E.g. 10 per hour; 3 per minute"
            ),
        )
    ]


@hookimpl
def relais_activation_step(tenant, user):
    """New staff prove their phone by a code before enrolling their authenticator app."""
    return views.activation_step(user)


@hookimpl
def relais_patient_sign_in_links(tenant):
    return [MenuItem(label=_l("Sign up or log in with your phone"), endpoint="otp.login")]
