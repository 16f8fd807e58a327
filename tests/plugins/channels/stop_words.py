"""A test feature that handles the replies "STOP" (as an opt-out feature would)."""

from core import hookimpl

kind = "feature"
handled: list[tuple[str, str]] = []  # (channel, text) of each reply it took


@hookimpl
def relais_handle_inbound(channel, text):
    if text.strip().upper() != "STOP":
        return None
    handled.append((channel, text))
    return "opted out of SMS"
