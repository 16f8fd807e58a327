"""Web Push: RFC 8030 (the protocol), RFC 8291 (payload encryption), RFC 8292 (VAPID).

- Send: for each of the patient's subscriptions, ``POST <endpoint>`` with the payload
  encrypted for that browser (``Content-Encoding: aes128gcm``), ``TTL``, ``Urgency: high``,
  ``Topic`` (our message id: a copy still waiting at the push service is replaced, not
  added) and ``Authorization: vapid t=<JWT signed ES256>, k=<our public key>``, the JWT
  claiming ``aud`` (the push service's origin), ``exp`` (12 hours) and ``sub`` (the
  operator's contact). pywebpush does the encryption and signing.
- 201 (or 202) is acceptance by the push service, not display: the message counts as
  delivered only when the service worker on the device acknowledges it. The payload carries
  where and how (the clinic's receipts URL, our message id, a token); the worker shows the
  notification and posts ``{"message_id", "token"}`` there. Without an acknowledgement within
  ``ack_timeout`` minutes the sweeper sends the message by the next channel of its plan.
- 404 or 410: the subscription is gone (unsubscribed, expired): it is deleted. None left:
  unreachable, the next channel. 429 and 5xx: temporary. Other 4xx (400, 403 for keys that
  do not match the subscription, 413): permanent.
- Push services have no lookup: a call whose answer was lost is sent again, under the same
  ``Topic`` and notification ``tag``, so the device replaces the notification instead of
  showing it twice (``may_repeat``).
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask_babel import force_locale
from flask_babel import gettext as _
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from core.plugin_api import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    Outgoing,
    Provider,
    ProviderError,
    Receipt,
    Result,
    SignatureError,
    Tenant,
    db,
    utcnow,
)
from plugins.channels.webpush import subscriptions

# RFC 8291: push services take at least 4096 bytes of encrypted body; the aes128gcm header
# (86 bytes), the tag (16) and the padding delimiter (1) leave 3993 for the payload.
MAX_PAYLOAD = 3993
GONE = "gone"


def generate_keys() -> tuple[str, str]:
    """A new VAPID key pair: the private key (the 32-byte scalar) and the public key (the
    uncompressed point, the browser's ``applicationServerKey``), both base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64(private), _b64(public)


def ack_token(private_key: str, ack_url: str, message_id) -> str:
    """The token a device sends back with its acknowledgement: HMAC-SHA256 of the clinic's
    receipts URL (host and path: good for one clinic only) and the message id, under a key
    derived from the VAPID private key."""
    key = hmac.new(b"relais webpush acknowledgement", private_key.encode(), hashlib.sha256)
    parts = urlsplit(ack_url)
    text = f"{parts.netloc.rpartition('@')[2].lower()}{parts.path}|{message_id}"
    return hmac.new(key.digest(), text.encode(), hashlib.sha256).hexdigest()


class WebPush(Provider):
    """Standard Web Push to every browser a patient turned notifications on in."""

    name, channel = "webpush", "push"
    acknowledged = True
    may_repeat = True  # no lookup: a lost answer means sending again (same Topic and tag)

    def preview(self, text: str, subject: str | None, language: str) -> dict[str, str]:
        """The notification's title and text as a device shows them: the title cut to 120
        characters, the text cut (marked "…") to fit a push (before the acknowledgement's
        link and token, which take a little more of it when sent)."""
        data = {
            "title": (subject or _("New message"))[:120],
            "body": text,
            "tag": str(uuid.UUID(int=0)),
            "url": "/me/",
            "message_id": str(uuid.UUID(int=0)),
        }
        shown = json.loads(encoded(data))
        return {"title": shown["title"], "text": shown["body"]}

    # --- sending -----------------------------------------------------------------------------

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        private, contact = self.settings.get("vapid_private_key"), self.settings.get("contact")
        if not private:
            raise ProviderError("no VAPID keys: run `relais webpush keys`", PERMANENT)
        if not contact:
            raise ProviderError("no contact (mailto: or https:) is set for Web Push", PERMANENT)
        vapid = Vapid.from_raw(private.encode())
        return [self._send(o, vapid, private, contact, timeout) for o in batch]

    def _send(self, outgoing: Outgoing, vapid, private: str, contact: str, timeout: float):
        try:
            targets = json.loads(outgoing.to)
            assert isinstance(targets, list) and all("endpoint" in t for t in targets)
        except (ValueError, AssertionError, TypeError):
            targets = []
        if not targets:
            return Result(outgoing.message_id, UNREACHABLE, error="no push subscription")
        data = encoded(payload(outgoing, private))
        deadline = time.monotonic() + timeout
        answers = []
        for target in targets:
            left = deadline - time.monotonic()
            if left <= 0.05:
                answers.append((TEMPORARY, "no time left for every device", False))
                break
            answers.append(self._push(target, data, outgoing, vapid, contact, left))
        subscriptions.forget(
            [t["id"] for t, a in zip(targets, answers, strict=False) if a[0] == GONE]
        )
        taken = [t["id"] for t, a in zip(targets, answers, strict=False) if a[0] == ACCEPTED]
        if taken:
            subscriptions.used(taken)
            return Result(outgoing.message_id, ACCEPTED, provider_ref=str(outgoing.message_id))
        for outcome in (TEMPORARY, PERMANENT):
            failed = [a for a in answers if a[0] == outcome]
            if failed:
                return Result(
                    outgoing.message_id,
                    outcome,
                    error=failed[0][1][:200],
                    unknown=any(a[2] for a in failed),
                )
        return Result(outgoing.message_id, UNREACHABLE, error="every subscription is gone")

    def _push(self, target: dict, data: bytes, outgoing: Outgoing, vapid, contact, timeout):
        """One device: (outcome, error, unknown)."""
        try:
            webpush(
                subscription_info=target,
                data=data,
                vapid_private_key=vapid,
                vapid_claims={"sub": contact},  # a new dict: pywebpush adds aud and exp to it
                ttl=int(self.settings.get("ttl") or 0),
                timeout=timeout,
                headers={"Topic": outgoing.message_id.hex, "Urgency": "high"},
                requests_session=_session(),
            )
        except WebPushException as exc:
            status = exc.status_code
            if status in (404, 410):
                return GONE, f"HTTP {status}: the subscription is gone", False
            if status is None or status == 429 or status >= 500:
                return TEMPORARY, f"push service: HTTP {status}", False
            return PERMANENT, f"push service: HTTP {status} {_reason(exc)}", False
        except requests.ConnectTimeout:
            return TEMPORARY, "push service out of reach: connect timeout", False
        except requests.Timeout:  # it may have taken it: the retry may repeat (same Topic)
            return TEMPORARY, "push service: no answer in time", True
        except requests.ConnectionError as exc:
            return TEMPORARY, f"push service out of reach: {type(exc).__name__}", False
        except requests.RequestException as exc:
            return TEMPORARY, f"push service: {type(exc).__name__}", True
        return ACCEPTED, None, False

    # --- acknowledgements (the service worker's receipts) ------------------------------------

    def verify(self, url: str, headers: dict[str, str], body: bytes, form: dict) -> None:
        private = self.settings.get("vapid_private_key")
        try:
            message_id, token, _status = _acknowledgement(body)
        except ValueError:
            raise SignatureError("not an acknowledgement") from None
        if not private or not hmac.compare_digest(
            token.encode(), ack_token(private, url, message_id).encode()
        ):
            raise SignatureError("an acknowledgement without a valid token")

    def parse_receipts(self, headers: dict[str, str], body: bytes, form: dict) -> list[Receipt]:
        message_id, _token, status = _acknowledgement(body)
        # Matched on (webpush, reference) only: an acknowledgement that comes after the
        # message went on by another channel changes nothing of what that channel did.
        return [
            Receipt(
                status=status,
                at=utcnow(),
                provider_ref=str(message_id),
                error=None if status == "delivered" else "the device could not show it",
            )
        ]


def payload(outgoing: Outgoing, private_key: str) -> dict:
    """What the service worker receives (end-to-end encrypted): the notification's title and
    text, and how to acknowledge it."""
    data = {
        "title": (outgoing.subject or _default_title(outgoing))[:120],
        "body": outgoing.text,
        "tag": str(outgoing.message_id),
        "url": "/me/",
        "message_id": str(outgoing.message_id),
    }
    if outgoing.callback_url:
        data["ack"] = outgoing.callback_url
        data["token"] = ack_token(private_key, outgoing.callback_url, outgoing.message_id)
    return data


def encoded(data: dict) -> bytes:
    """The payload as UTF-8 JSON, its text cut (marked "…") so that it fits a push."""
    while True:
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        over = len(raw) - MAX_PAYLOAD
        if over <= 0 or len(data["body"]) <= 1:
            return raw
        data = {**data, "body": _fit(data["body"], len(data["body"].encode()) - over - 8)}


def _default_title(outgoing: Outgoing) -> str:
    tenant = db.session.get(Tenant, outgoing.tenant_id)
    with force_locale(outgoing.language or "en"):
        if tenant is None:
            return _("New message")
        return _("Message from %(clinic)s", clinic=tenant.name)


def _fit(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character, marked with "…"."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: max(limit - 3, 0)].decode(errors="ignore") + "…"


def _acknowledgement(body: bytes) -> tuple[uuid.UUID, str, str]:
    """(message id, token, status) of a service worker's post; ValueError if malformed."""
    data = json.loads(body)  # a ValueError when it is not JSON
    if not isinstance(data, dict):
        raise ValueError("an acknowledgement is a JSON object")
    token, status = data.get("token"), data.get("status", "delivered")
    if not isinstance(token, str) or not 0 < len(token) <= 128:
        raise ValueError("token: missing")
    if status not in ("delivered", "undelivered"):
        raise ValueError("status: delivered or undelivered")
    return uuid.UUID(str(data.get("message_id"))), token, status


def _reason(exc: WebPushException) -> str:
    response = exc.response
    text = getattr(response, "text", "") or ""
    return " ".join(text.split())[:100]


_sessions: dict[int, requests.Session] = {}


def _session() -> requests.Session:
    """A keep-alive connection pool per process (a forked worker gets its own)."""
    session = _sessions.get(os.getpid())
    if session is None:
        _sessions.clear()
        session = _sessions[os.getpid()] = requests.Session()
        session.headers["User-Agent"] = "relais-webpush"
    return session


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
