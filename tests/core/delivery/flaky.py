"""A test channel plugin whose SMS provider fails as a test tells it to (in-process only)."""

from core import hookimpl
from core.delivery.providers import ACCEPTED, Provider, ProviderError, Result

kind = "channel"
script: list[str] = []  # outcomes to give, one per call; empty: accept
calls: list[list[str]] = []  # the recipients of each call


class FlakySms(Provider):
    name, channel = "flaky_sms", "sms"

    def try_send(self, batch, timeout):
        calls.append([o.to for o in batch])
        outcome = script.pop(0) if script else ACCEPTED
        if outcome == "timeout":
            raise TimeoutError("read timed out")
        if outcome != ACCEPTED:
            raise ProviderError(f"scripted {outcome}", outcome)
        return [Result(o.message_id, ACCEPTED, provider_ref=f"flaky-{o.message_id}") for o in batch]


@hookimpl
def relais_register_channels():
    return [FlakySms]
