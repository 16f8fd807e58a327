"""Declares a provider whose name another plugin already took."""

from core import hookimpl
from core.delivery.providers import Provider

kind = "channel"


class Twin(Provider):
    name = "twin_sms"
    channel = "sms"


@hookimpl
def relais_register_channels():
    return [Twin]
