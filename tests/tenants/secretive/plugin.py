"""Secretive: a test feature with a provider token an operator sets per country."""

from core import hookimpl
from core.clinic.settings import Setting

kind = "feature"


def _sender(text: str) -> str:
    if len(text) > 11:
        raise ValueError("at most 11 characters")
    return text


@hookimpl
def relais_plugin_settings():
    return [
        Setting("api_token", "API token", secret=True, help="The provider's token."),
        Setting("sender", "Sender name", default="Relais", parse=_sender),
    ]
