"""A plugin whose reply handler fails: its error must reach the core as it was raised."""

from core import hookimpl

kind = "feature"


class Broken(RuntimeError):
    """What this plugin raises."""


@hookimpl(tryfirst=True)
def relais_handle_inbound(tenant, patient, channel, text):
    raise Broken("the exploding plugin broke")
