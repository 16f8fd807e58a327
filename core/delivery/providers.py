"""The contract between the core and channel plugins.

A channel plugin implements only what is specific to its provider (:meth:`Provider.try_send`,
the parsers of its webhooks); the core wraps the call with timing, a timeout, error mapping,
a circuit breaker and the record of every attempt (the template method of GOV.UK Notify's
SMS clients).
"""

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, NamedTuple

from flask import current_app

from core.regulation import is_transactional

ACCEPTED, TEMPORARY, PERMANENT, UNREACHABLE = "accepted", "temporary", "permanent", "unreachable"


@dataclass(frozen=True)
class Outgoing:
    """One message handed to a provider.

    ``message_id`` is the idempotency key: the same on every retry of the message, sent as the
    provider's idempotency key where it has one, as the client reference otherwise.
    """

    message_id: uuid.UUID
    tenant_id: uuid.UUID
    channel: str
    to: str  # E.164 phone, or e-mail address
    text: str
    subject: str | None = None
    html: str | None = None
    callback_url: str | None = None  # where the provider posts delivery receipts
    attachments: tuple = ()
    purpose: str = "transactional"  # e.g. "otp": a voice call spells a code digit by digit
    language: str = "en"  # the patient's language (ISO 639-1), for speech and app texts


@dataclass(frozen=True)
class Result:
    """What the provider answered for one message.

    ``outcome`` is ``accepted``; ``temporary`` (worth retrying: timeouts, 5xx, throttling);
    ``permanent`` (this provider will never take it: bad credentials, refused content); or
    ``unreachable`` (the address cannot receive on this channel: go to the next channel).
    """

    message_id: uuid.UUID
    outcome: str
    provider_ref: str | None = None
    error: str | None = None
    unknown: bool = False  # the call may have reached the provider (a timeout, a cut)
    # Found by a lookup that matches by content (recipient, text, time) rather than by a
    # reference of ours: the core checks no other message already holds ``provider_ref``.
    looked_up: bool = False


@dataclass(frozen=True)
class Receipt:
    """A delivery report: the provider's reference (or ours), the status and its time."""

    status: str  # "delivered" or "undelivered" (or "sent" for an intermediate report)
    at: datetime
    provider_ref: str | None = None
    message_id: uuid.UUID | None = None
    error: str | None = None


@dataclass(frozen=True)
class Inbound:
    """A reply from a patient: who sent it, to which of our numbers, what it says."""

    sender: str
    recipient: str
    text: str
    at: datetime
    provider_ref: str | None = None


class ProviderError(Exception):
    """Raised by a plugin's ``try_send`` for a whole-batch failure, with its outcome."""

    def __init__(self, message: str, outcome: str = TEMPORARY, unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome, self.unknown = outcome, unknown


class SignatureError(Exception):
    """A webhook's signature or secret does not check out: answer 401, change nothing."""


@dataclass
class Provider:
    """Base class of a channel plugin's provider.

    Subclasses set ``name`` and ``channel`` and implement :meth:`try_send`; those that
    receive webhooks implement :meth:`verify`, :meth:`parse_receipts` and
    :meth:`parse_inbound`. ``settings`` are the plugin's settings for the country.
    """

    name: ClassVar[str]
    channel: ClassVar[str]
    batch_size: ClassVar[int] = 1  # how many messages one call may carry
    # True when the provider has neither an idempotency key nor a lookup (SMTP): a message
    # whose call's outcome is unknown is sent again and may arrive twice, same reference.
    may_repeat: ClassVar[bool] = False
    # True when a message counts as delivered only once the recipient's device acknowledges
    # it (push): a sent message not acknowledged within the plugin's ``ack_timeout`` setting
    # (minutes) falls back to the next channel of its plan.
    acknowledged: ClassVar[bool] = False
    # True when taking a message is delivering it: the provider is the recipient's mailbox
    # itself (the development outbox), so an accepted message is delivered at once.
    delivered_on_accept: ClassVar[bool] = False
    settings: dict[str, Any] = field(default_factory=dict)

    def sender(self, purpose: str) -> str | None:
        """Who a message of ``purpose`` comes from: the ``promotional_sender`` setting for
        non-essential traffic when the plugin has one set (France sends campaigns from a
        promotional short code), else the ``sender`` setting."""
        if not is_transactional(purpose) and self.settings.get("promotional_sender"):
            return self.settings["promotional_sender"]
        return self.settings.get("sender")

    def preview(self, text: str, subject: str | None, language: str) -> dict[str, str]:
        """What a recipient would see or hear of a message with this ``text`` and
        ``subject`` in ``language``, as this provider would shape it (a push cuts its text,
        a call reads it aloud): ``text``, and ``title`` where the channel shows one. For
        previews: nothing is sent."""
        return {"text": text}

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        """Send ``batch`` (at most ``batch_size`` messages); return one Result per message.

        Raise :class:`ProviderError` (or let a network error out) when the whole call failed.
        """
        raise NotImplementedError

    def lookup(self, batch: list[Outgoing], since: datetime, timeout: float) -> list[Result]:
        """Ask the provider whether it already took these messages (sent after ``since``).

        Called before sending again messages whose previous call's outcome is unknown (the
        worker died during it): return an ``accepted`` Result for each one the provider has,
        so that it is not sent twice. Messages not in the answer are sent again. Providers
        with an idempotency key of their own need not implement it.
        """
        return []

    def verify(self, url: str, headers: dict[str, str], body: bytes, form: dict) -> None:
        """Check a webhook's authenticity; raise :class:`SignatureError` if it fails."""
        raise SignatureError(f"{self.name} takes no webhooks")

    def parse_receipts(self, headers: dict[str, str], body: bytes, form: dict) -> list[Receipt]:
        """Read delivery reports from a webhook; raise ``ValueError`` if malformed."""
        raise ValueError(f"{self.name} sends no receipts")

    def parse_inbound(self, headers: dict[str, str], body: bytes, form: dict) -> list[Inbound]:
        """Read patient replies from a webhook; raise ``ValueError`` if malformed."""
        raise ValueError(f"{self.name} receives no replies")


class DeclaredProvider(NamedTuple):
    """A provider a channel plugin declared (``relais_register_channels``)."""

    plugin: str  # the name of the plugin that declared it
    provider: type[Provider]

    @property
    def channel(self) -> str:
        return self.provider.channel


def declared_providers() -> Mapping[str, DeclaredProvider]:
    """Every provider the installed plugins declared, by provider name."""
    return current_app.extensions["relais"].channels


def declared_provider(name: str) -> DeclaredProvider | None:
    """The provider named ``name`` and the plugin that declared it, or None."""
    return declared_providers().get(name)


def send_batch(
    provider: Provider, batch: list[Outgoing], timeout: float
) -> tuple[list[Result], int]:
    """Call a provider for a batch, timed; any failure becomes per-message results.

    Network errors and timeouts are temporary; a plugin's ProviderError carries its outcome.
    Returns the results in batch order and the call's latency in milliseconds.
    """
    started = time.perf_counter()
    try:
        results = provider.try_send(batch, timeout)
        by_id = {r.message_id: r for r in results}
        results = [
            by_id.get(o.message_id) or Result(o.message_id, TEMPORARY, error="no answer for it")
            for o in batch
        ]
    except ProviderError as exc:
        results = [
            Result(o.message_id, exc.outcome, error=str(exc)[:200], unknown=exc.unknown)
            for o in batch
        ]
    except Exception as exc:  # noqa: BLE001 - a provider's failure must never lose the batch
        # A network error may come after the provider took the messages: their outcome is
        # unknown, and the retry looks them up first (see dispatch._recover).
        error = f"{type(exc).__name__}: {exc}"[:200]
        results = [Result(o.message_id, TEMPORARY, error=error, unknown=True) for o in batch]
    return results, int((time.perf_counter() - started) * 1000)


class CircuitBreaker:
    """Stops calling a provider after repeated failures, for a cool-down (per worker)."""

    def __init__(self, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.reset()

    def reset(self) -> None:
        """Forget what was seen: every provider is healthy again."""
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def available(self, name: str) -> bool:
        return self._open_until.get(name, 0.0) <= time.monotonic()

    def record(self, name: str, ok: bool) -> None:
        if ok:
            self._failures.pop(name, None)
            return
        self._failures[name] = self._failures.get(name, 0) + 1
        if self._failures[name] >= self.threshold:
            self._open_until[name] = time.monotonic() + self.cooldown
            self._failures[name] = 0
