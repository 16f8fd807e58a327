"""Declares the same provider name as twin_channel."""

from core import hookimpl
from tests.core.broken_plugins.twin_channel import Twin

kind = "channel"


@hookimpl
def relais_register_channels():
    return [Twin]
