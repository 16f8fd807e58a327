"""The channel contract, as tests: what every provider plugin must do, checked the same way.

A plugin author subclasses :class:`ChannelContract` (plus the mixins that apply to the
provider) in a test module and gives it a ``contract`` fixture returning a
:class:`ContractSetup` wired to their provider and to a fake of the provider's API (a
loopback server speaking its protocol)::

    from core.testing import ChannelContract, ContractSetup

    class TestMyProvider(ChannelContract, FailureMapping, ReceiptContract):
        @pytest.fixture
        def contract(self, my_fake_api):
            return ContractSetup(provider=MyProvider(settings={...}), fail=my_fake_api.fail,
                                 received=my_fake_api.references, ...)

Every test below then runs against it: sending, idempotent recovery, error mapping
(temporary vs permanent), receipt and reply parsing, and webhook authentication.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from core.db import utcnow
from core.delivery.providers import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    Outgoing,
    Provider,
    SignatureError,
    send_batch,
)

Webhook = tuple[str, dict, bytes, dict]  # url, headers, body, form: what reaches verify/parse


@dataclass
class ContractSetup:
    """How the contract drives one provider and its fake.

    :param provider: the provider, configured to talk to the fake.
    :param to: an address the fake accepts for this channel.
    :param fail: ``fail(kind)`` makes the fake's next call fail: ``"temporary"`` (a 5xx or
        throttling), ``"permanent"`` (refused credentials or content), ``"unreachable"`` (the
        address cannot receive), ``"timeout"`` (no answer in time).
    :param received: the client references (our message ids, as strings) the fake took, one
        per message it would deliver: duplicates show as repeats.
    :param receipt: ``receipt(result, status)`` gives the webhook the provider would post for
        a message it accepted (``result``), with status ``"delivered"`` or ``"undelivered"``;
        None if the provider sends no receipts.
    :param inbound: ``inbound(sender, text)`` gives the webhook of a patient's reply; None if
        the channel takes no replies.
    :param tamper: ``tamper(webhook)`` returns it with a bad signature or secret.
    """

    provider: Provider
    to: str
    fail: Callable[[str], None]
    received: Callable[[], list[str]]
    receipt: Callable | None = None
    inbound: Callable | None = None
    tamper: Callable[[Webhook], Webhook] | None = None
    timeout: float = 2.0
    tenant_id: uuid.UUID = field(default_factory=uuid.uuid4)


def outgoing(setup: ContractSetup, text: str = "Rendez-vous demain à 9 h") -> Outgoing:
    return Outgoing(
        message_id=uuid.uuid4(),
        tenant_id=setup.tenant_id,
        channel=setup.provider.channel,
        to=setup.to,
        text=text,
        subject="Relais",
        callback_url="https://demo.relais.test/webhooks/x/receipts",
    )


def recover(setup: ContractSetup, message: Outgoing) -> None:
    """What the core does after a call of unknown outcome: look it up, else send again."""
    found = setup.provider.lookup([message], utcnow() - timedelta(minutes=1), setup.timeout)
    if not any(r.outcome == ACCEPTED for r in found):
        send_batch(setup.provider, [message], setup.timeout)


class ChannelContract:
    """What every provider does. Subclass it, give a ``contract`` fixture, and add the mixins
    that apply: :class:`FailureMapping`, :class:`ReceiptContract`, :class:`InboundContract`."""

    @pytest.fixture
    def contract(self) -> ContractSetup:  # pragma: no cover - the subclass gives it
        raise NotImplementedError("give a contract fixture returning a ContractSetup")

    def test_a_batch_is_sent_once_with_a_reference_each(self, contract):
        batch = [outgoing(contract, f"Message {n}") for n in range(3)]
        batch = batch[: contract.provider.batch_size]
        results, _ = send_batch(contract.provider, batch, contract.timeout)
        assert [r.outcome for r in results] == [ACCEPTED] * len(batch)
        assert all(r.provider_ref for r in results)
        assert sorted(contract.received()) == sorted(str(o.message_id) for o in batch)

    def test_a_call_of_unknown_outcome_is_not_delivered_twice(self, contract):
        message = outgoing(contract)
        send_batch(contract.provider, [message], contract.timeout)  # the answer was lost
        recover(contract, message)
        # A provider that can be neither asked nor deduplicated says so (``may_repeat``): its
        # second copy carries the same reference, for the recipient's software to spot it.
        copies = 2 if contract.provider.may_repeat else 1
        assert contract.received().count(str(message.message_id)) == copies


class FailureMapping:
    """Providers that can fail map each failure to what the core does next."""

    @pytest.mark.parametrize(
        ("kind", "outcome"),
        [
            ("temporary", TEMPORARY),
            ("timeout", TEMPORARY),
            ("permanent", PERMANENT),
            ("unreachable", UNREACHABLE),
        ],
    )
    def test_failures_map_to_what_the_core_does_next(self, contract, kind, outcome):
        contract.fail(kind)
        message = outgoing(contract)
        [result], latency_ms = send_batch(contract.provider, [message], contract.timeout)
        assert result.outcome == outcome, result.error
        assert result.error
        assert latency_ms <= contract.timeout * 1000 + 1500  # a timeout is bounded


class ReceiptContract:
    """Providers that post delivery receipts: read with their time, forged ones refused."""

    def test_receipts_are_read_with_their_time(self, contract):
        message = outgoing(contract)
        [result], _ = send_batch(contract.provider, [message], contract.timeout)
        for status in ("delivered", "undelivered"):
            url, headers, body, form = contract.receipt(result, status)
            contract.provider.verify(url, headers, body, form)
            [report] = contract.provider.parse_receipts(headers, body, form)
            assert report.status == status
            assert report.provider_ref == result.provider_ref or (
                report.message_id == message.message_id
            )
            assert isinstance(report.at, datetime) and report.at.tzinfo is not None

    def test_forged_receipts_are_refused(self, contract):
        [result], _ = send_batch(contract.provider, [outgoing(contract)], contract.timeout)
        with pytest.raises(SignatureError):
            contract.provider.verify(*contract.tamper(contract.receipt(result, "delivered")))

    def test_malformed_receipts_are_value_errors(self, contract):
        with pytest.raises(ValueError):  # noqa: PT011 - the core answers any with a 400
            contract.provider.parse_receipts({}, b"{not json", {})


class InboundContract:
    """Channels that take patients' replies: read, and forged ones refused."""

    def test_replies_are_read(self, contract):
        url, headers, body, form = contract.inbound("+33612345678", "OUI")
        contract.provider.verify(url, headers, body, form)
        [reply] = contract.provider.parse_inbound(headers, body, form)
        assert (reply.sender, reply.text) == ("+33612345678", "OUI")

    def test_forged_replies_are_refused(self, contract):
        with pytest.raises(SignatureError):
            contract.provider.verify(*contract.tamper(contract.inbound("+33612345678", "OUI")))
