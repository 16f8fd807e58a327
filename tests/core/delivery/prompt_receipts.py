"""A test channel plugin whose provider reports deliveries at once (a carrier that answers
in a fraction of a second): the report may reach the webhook before the worker has recorded
the send. Its webhook takes a JSON list of ``{"ref", "status"}``; tests sign nothing."""

import json

from core import hookimpl
from core.db import utcnow
from core.delivery.providers import ACCEPTED, Provider, Receipt, Result

kind = "channel"


def reference(message_id) -> str:
    """The provider's reference of a message (known before the answer reaches the worker)."""
    return f"prompt-{message_id}"


class PromptSms(Provider):
    name, channel = "prompt_sms", "sms"
    batch_size = 50

    def try_send(self, batch, timeout):
        return [Result(o.message_id, ACCEPTED, provider_ref=reference(o.message_id)) for o in batch]

    def verify(self, url, headers, body, form):
        return None

    def parse_receipts(self, headers, body, form):
        return [
            Receipt(status=r["status"], at=utcnow(), provider_ref=r["ref"])
            for r in json.loads(body)
        ]


@hookimpl
def relais_register_channels():
    return [PromptSms]
