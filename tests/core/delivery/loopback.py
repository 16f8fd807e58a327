"""A test channel plugin for an SMS provider's HTTP API on loopback (see LoopbackApi).

Its API has no idempotency key: the plugin sends our message id as a client reference and
recovers unknown outcomes by looking messages up by that reference.
"""

import httpx

from core import hookimpl
from core.clinic.settings import Setting
from core.delivery.providers import (
    ACCEPTED,
    PERMANENT,
    UNREACHABLE,
    Provider,
    ProviderError,
    Result,
)

kind = "channel"


class LoopbackSms(Provider):
    name, channel = "loopback_sms", "sms"

    def try_send(self, batch, timeout):
        [message] = batch
        response = httpx.post(
            f"{self.settings['base_url']}/messages",
            timeout=timeout,
            json={"reference": str(message.message_id), "to": message.to, "text": message.text},
        )
        if response.status_code >= 500:
            raise ProviderError(f"HTTP {response.status_code}")
        if response.status_code == 400 and response.json().get("error") == "invalid_number":
            raise ProviderError("invalid number", UNREACHABLE)
        if response.status_code >= 400:
            raise ProviderError(f"HTTP {response.status_code}", PERMANENT)
        return [Result(message.message_id, ACCEPTED, provider_ref=response.json()["id"])]

    def lookup(self, batch, since, timeout):
        found = []
        for message in batch:
            response = httpx.get(
                f"{self.settings['base_url']}/messages",
                timeout=timeout,
                params={"reference": str(message.message_id)},
            )
            found += [
                Result(message.message_id, ACCEPTED, provider_ref=m["id"])
                for m in response.json()["messages"]
            ]
        return found


@hookimpl
def relais_register_channels():
    return [LoopbackSms]


@hookimpl
def relais_plugin_settings():
    return [Setting("base_url", "API address")]
