"""Twilio SMS: Twilio's Programmable Messaging REST API, with signed receipts and replies.

Sending is one ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` per message (Twilio
takes one message per request), form-encoded ``To``, ``From`` (or ``MessagingServiceSid``
when the sender is a Messaging Service), ``Body`` and ``StatusCallback``, with HTTP Basic
authentication (account SID, auth token). Twilio's ``sid`` is the provider reference.

Twilio's Messages API has no idempotency key, and its messages carry no reference of ours.
A call whose outcome is unknown (the worker died during it, or Twilio took the request and
did not answer in time) is therefore settled with the list API: the messages sent to the same
number since the call, matched by their text (:meth:`TwilioSms.lookup`). A retry is sent only
when Twilio has no such message.

Status callbacks come to ``https://<clinic>.<domain>/webhooks/twilio_sms/receipts`` and
replies to ``https://hooks.<domain>/webhooks/twilio_sms/<COUNTRY>/inbound`` (the number's
"A message comes in" webhook in the Twilio console); both are signed with
``X-Twilio-Signature`` (HMAC-SHA1 of the URL and the sorted form parameters, keyed with the
auth token), checked here without Twilio's library.
"""

import base64
import hashlib
import hmac
import os
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import phonenumbers
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    Inbound,
    Outgoing,
    Provider,
    ProviderError,
    Receipt,
    Result,
    Setting,
    SignatureError,
    hookimpl,
    sms_segments,
    utcnow,
)

kind = "channel"
description = _l(
    "Twilio SMS: text messages through your Twilio account, with receipts and replies."
)

API_VERSION = "2010-04-01"
DEFAULT_BASE_URL = "https://api.twilio.com"
MAX_SEGMENTS = 10  # a longer text is refused: shorten it, or send it by another channel
SKEW = timedelta(seconds=60)  # allowance between our clock and Twilio's, in lookups

# Twilio's error codes (https://www.twilio.com/docs/api/errors) that decide an outcome.
TEMPORARY_CODES = {
    20429: "too many requests",
    21611: "the sender's queue at Twilio is full",
}
UNREACHABLE_CODES = {
    21211: "invalid 'To' number",
    21217: "the number does not appear to be valid",
    21610: "the patient unsubscribed from this sender (STOP)",
    21612: "the number cannot be reached by SMS from this sender",
    21614: "the number is not a mobile number",
    21635: "the number is a landline",
}
AUTH_CODES = {20003: "the account SID or auth token is wrong"}
# Codes of status callbacks (delivery failures after Twilio took the message), for staff.
DELIVERY_CODES = {
    30003: "unreachable handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
    30008: "unknown error",
}
RECEIPT_STATUSES = {
    "delivered": "delivered",
    "read": "delivered",  # read implies delivered (channels with read receipts)
    "undelivered": "undelivered",
    "failed": "undelivered",
    "canceled": "undelivered",
}  # every other status (accepted, queued, sending, sent...) is an intermediate report

_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$", re.IGNORECASE)
_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class TwilioAccount(Provider):
    """What Twilio's APIs share: an account's address and Basic authentication, webhooks
    signed with ``X-Twilio-Signature``, and settling calls of unknown outcome with a lookup.

    Subclasses (messages, voice calls) give ``try_send``, ``lookup`` and the parsers, and
    name their list resource, its JSON key and its date filter.
    """

    resource: ClassVar[str]  # e.g. "Messages.json"
    listed: ClassVar[str]  # the list's key in Twilio's answer, e.g. "messages"
    since_filter: ClassVar[str]  # e.g. "DateSent>"

    def _listed(self, to: str, earliest: datetime, timeout: float) -> list[dict]:
        """The recipient's items since the day of ``earliest``, then their latest ones
        unfiltered (an item still queued at Twilio has no date for the filter to match)."""
        queries = (
            {"To": to, self.since_filter: earliest.date().isoformat(), "PageSize": "100"},
            {"To": to, "PageSize": "50"},
        )
        seen: dict[str, dict] = {}
        for params in queries:
            try:
                response = _client().get(
                    self._url(self.resource), params=params, auth=self._auth(), timeout=timeout
                )
            except httpx.TransportError as exc:
                raise ProviderError(f"Twilio's list did not answer: {exc}") from exc
            if response.status_code != 200:
                raise ProviderError(f"Twilio's list answered HTTP {response.status_code}")
            for item in _json(response).get(self.listed) or []:
                seen.setdefault(item.get("sid"), item)
        return list(seen.values())

    def _settle(self, message: Outgoing, started: datetime, timeout: float, exc) -> Result:
        """The outcome of a call that got no answer: whatever the list API says now.

        Twilio lists a message as soon as it creates it; one it creates later still (a very
        slow request) is the case the core's lookup before a retry covers.
        """
        why = f"no answer from Twilio within {timeout:g} s ({type(exc).__name__})"
        try:
            found = self.lookup([message], started, timeout)
        except Exception as lookup_exc:  # noqa: BLE001 - unknown stays temporary
            return Result(
                message.message_id,
                TEMPORARY,
                error=f"{why}; lookup failed: {lookup_exc}"[:200],
                unknown=True,
            )
        if found:
            return found[0]
        # Twilio may still create it (a very slow request): the retry looks it up first.
        return Result(
            message.message_id, TEMPORARY, error=f"{why}; Twilio has no such message", unknown=True
        )

    def verify(self, url: str, headers: dict[str, str], body: bytes, form: dict) -> None:
        """Check ``X-Twilio-Signature`` (HMAC-SHA1, keyed with the auth token, over the URL
        Twilio called followed by every form parameter, name then value, sorted by name).

        The URL is tried as Flask saw it, as ``https`` (TLS ended at a proxy in front of us),
        and each with and without its default port, as Twilio's own libraries do: Twilio
        signs the URL it was given, and which of these it was cannot be told from here.
        Webhooks signed with a shared key (``X-Twilio-Webhooks-Signature-Settings``) are not
        supported: set the auth token, Twilio's default.
        """
        token = self.settings.get("auth_token")
        signature = _header(headers, "X-Twilio-Signature")
        if not token or not signature:
            raise SignatureError("no X-Twilio-Signature, or no auth token set")
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        for candidate in _urls_twilio_may_have_signed(url):
            expected = signature_for(token, candidate, params)
            if hmac.compare_digest(expected.encode(), signature.encode()):
                return
        raise SignatureError("X-Twilio-Signature does not match")

    def _url(self, resource: str) -> str:
        base = (self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/{API_VERSION}/Accounts/{self.settings['account_sid']}/{resource}"

    def _auth(self) -> tuple[str, str]:
        return self.settings["account_sid"], self.settings["auth_token"]


class TwilioSms(TwilioAccount):
    """Twilio's Messages API, one request per message."""

    name, channel = "twilio_sms", "sms"
    resource, listed, since_filter = "Messages.json", "messages", "DateSent>"
    batch_size = 1

    # --- sending ---------------------------------------------------------------------------

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        self._check_configured()
        return [self._send(message, timeout) for message in batch]

    def _send(self, message: Outgoing, timeout: float) -> Result:
        encoding, count = sms_segments(message.text)
        if count > MAX_SEGMENTS:
            return Result(
                message.message_id,
                PERMANENT,
                error=f"the text takes {count} SMS segments ({encoding}); "
                f"at most {MAX_SEGMENTS} are sent: shorten it",
            )
        form = {"To": message.to, "Body": message.text, **self._sender(message.purpose)}
        if message.callback_url:
            form["StatusCallback"] = message.callback_url
        started = utcnow()
        try:
            response = _client().post(
                self._url("Messages.json"), data=form, auth=self._auth(), timeout=timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never reached Twilio: safe to send again.
            return Result(message.message_id, TEMPORARY, error=f"Twilio unreachable: {exc}"[:200])
        except httpx.TransportError as exc:
            # Sent, but no (complete) answer: Twilio may have created the message.
            return self._settle(message, started, timeout, exc)
        return _answer(message, response)

    # --- recovering unknown outcomes -------------------------------------------------------

    def lookup(self, batch: list[Outgoing], since: datetime, timeout: float) -> list[Result]:
        """Find the messages Twilio created for ``batch`` since ``since``.

        Twilio has no idempotency key and keeps no reference of ours, so a message is
        recognised by its recipient, its text and its creation time (at or after ``since``,
        less :data:`SKEW`); each Twilio message answers for one of ours at most. Two lists
        are read per recipient: ``DateSent>=`` the day of ``since`` (what Twilio sent since),
        then the recipient's latest messages unfiltered, because a message still queued at
        Twilio has no ``date_sent`` and a ``DateSent`` filter would hide exactly it.

        :raises ProviderError: when Twilio does not answer the list (the caller retries later).
        """
        self._check_configured()
        earliest = since - SKEW
        listed: dict[str, list[dict]] = {}
        taken: set[str] = set()
        found = []
        for message in batch:
            if message.to not in listed:
                listed[message.to] = self._listed(message.to, earliest, timeout)
            for candidate in listed[message.to]:
                sid = candidate.get("sid")
                if sid in taken or not _same_message(candidate, message, earliest):
                    continue
                taken.add(sid)
                found.append(Result(message.message_id, ACCEPTED, provider_ref=sid))
                break
        return found

    # --- webhooks --------------------------------------------------------------------------

    def parse_receipts(self, headers: dict[str, str], body: bytes, form: dict) -> list[Receipt]:
        """A status callback: ``MessageSid``, ``MessageStatus``, ``ErrorCode`` on failures.

        Its time: Twilio's callbacks carry no time of the event, only, on delivered and
        undelivered reports, ``RawDlrDoneDate`` (YYMMDDhhmm, the carrier's delivery report,
        minute precision, in a time zone Twilio does not state). See :func:`receipt_time`.
        """
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if not sid or not _SID.match(sid) or not status:
            raise ValueError("a status callback needs MessageSid and MessageStatus")
        ours = RECEIPT_STATUSES.get(status, "sent")
        error = None
        if ours == "undelivered":
            code = (form.get("ErrorCode") or "").strip()
            meaning = DELIVERY_CODES.get(int(code)) if code.isdigit() else None
            error = f"Twilio error {code}" if code else f"Twilio reports the message {status}"
            error = f"{error}: {meaning}" if meaning else error
        at = receipt_time(form.get("RawDlrDoneDate"), utcnow())
        return [Receipt(status=ours, at=at, provider_ref=sid, error=error)]

    def parse_inbound(self, headers: dict[str, str], body: bytes, form: dict) -> list[Inbound]:
        """A message to one of our numbers: ``From``, ``To``, ``Body``, ``MessageSid``.

        Twilio's incoming-message webhook carries no time: the reply is dated on arrival.
        """
        sender, recipient, sid = form.get("From"), form.get("To"), form.get("MessageSid")
        if not sender or not recipient or not sid or "Body" not in form:
            raise ValueError("an incoming message needs From, To, Body and MessageSid")
        return [
            Inbound(
                sender=sender, recipient=recipient, text=form["Body"], at=utcnow(), provider_ref=sid
            )
        ]

    # --- helpers ---------------------------------------------------------------------------

    def _check_configured(self) -> None:
        missing = [n for n in ("account_sid", "auth_token", "sender") if not self.settings.get(n)]
        if missing:
            raise ProviderError(
                f"sms_twilio is not configured: set its {', '.join(missing)}", PERMANENT
            )

    def _sender(self, purpose: str) -> dict[str, str]:
        sender = self.sender(purpose)
        if sender.upper().startswith("MG") and _SID.match(sender):
            return {"MessagingServiceSid": sender}
        return {"From": sender}


def _answer(message: Outgoing, response: httpx.Response) -> Result:
    """Map Twilio's answer to a create request onto an outcome."""
    payload = _json(response)
    status = response.status_code
    if status in (200, 201) and payload.get("sid"):
        return Result(message.message_id, ACCEPTED, provider_ref=payload["sid"])
    code = payload.get("code")
    code = code if isinstance(code, int) else None
    if code in TEMPORARY_CODES or status == 429 or status >= 500 or status < 400:
        outcome = TEMPORARY
    elif code in AUTH_CODES or status in (401, 403):
        outcome = PERMANENT
    elif code in UNREACHABLE_CODES:
        outcome = UNREACHABLE
    else:
        outcome = PERMANENT
    meaning = TEMPORARY_CODES.get(code) or UNREACHABLE_CODES.get(code) or AUTH_CODES.get(code)
    detail = meaning or payload.get("message") or response.reason_phrase
    error = f"Twilio HTTP {status}" + (f" error {code}" if code else "") + f": {detail}"
    return Result(message.message_id, outcome, error=error[:200])


def _same_message(candidate: dict, message: Outgoing, earliest: datetime) -> bool:
    if not str(candidate.get("direction") or "outbound-api").startswith("outbound"):
        return False
    if candidate.get("to") != message.to:
        return False
    body = candidate.get("body") or ""
    # A trial account prefixes "Sent from your Twilio trial account - ".
    if body != message.text and not body.endswith(" - " + message.text):
        return False
    try:
        created = parsedate_to_datetime(candidate.get("date_created") or "")
    except (TypeError, ValueError):
        return False
    return created.tzinfo is not None and created >= earliest


def receipt_time(raw: str | None, now: datetime) -> datetime:
    """When a reported event happened, from ``RawDlrDoneDate`` (YYMMDDhhmm) and arrival.

    Twilio posts a callback as soon as it has the carrier's report, so its arrival (``now``)
    is the best time we have, and better than ``RawDlrDoneDate``, which is cut to the
    minute (a delivery would seem to come before its send). ``RawDlrDoneDate`` read as UTC
    is used only when it shows the callback came late (over 2 minutes after it) and is
    still plausible as UTC: Twilio states no time zone and carriers differ, so a value in
    the future or over an hour old is a carrier's local time, and ignored.
    """
    if not raw or not re.fullmatch(r"\d{10}", raw.strip()):
        return now
    try:
        done = datetime.strptime(raw.strip(), "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return now
    late = now - done
    if timedelta(minutes=2) < late <= timedelta(hours=1):
        return done
    return now


def signature_for(token: str, url: str, params) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(token, url + names and values)).

    Parameters are sorted by name, and the values of a repeated name by value, each
    distinct pair once (as Twilio's libraries compute it).
    """
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _urls_twilio_may_have_signed(url: str) -> list[str]:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    host = netloc.rsplit(":", 1)[0] if parts.port else netloc
    candidates = []
    for scheme in dict.fromkeys((parts.scheme, "https")):
        port = parts.port if scheme == parts.scheme else None  # a proxy's inner port: not signed
        default = 443 if scheme == "https" else 80
        for where in (f"{host}:{port}" if port else host, f"{host}:{port or default}"):
            candidates.append(urlunsplit((scheme, where, parts.path, parts.query, "")))
    return list(dict.fromkeys(candidates))


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _json(response: httpx.Response) -> dict:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


_clients: dict[int, httpx.Client] = {}


def _client() -> httpx.Client:
    """One connection pool per process (a forked worker must not share its parent's)."""
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        _clients.clear()
        client = _clients[pid] = httpx.Client(headers={"User-Agent": "relais-twilio"})
    return client


# --- settings ------------------------------------------------------------------------------


def parse_account_sid(text: str) -> str:
    text = text.strip()
    if not (text.upper().startswith("AC") and _SID.match(text)):
        raise ValueError(
            _("Enter the account SID from your Twilio console (AC and 32 characters).")
        )
    return text


def parse_auth_token(text: str) -> str:
    text = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise ValueError(_("Enter the auth token from your Twilio console (32 characters)."))
    return text


def parse_sender(text: str) -> str:
    """A number in international format, a short code, an alphanumeric sender ID, or a
    Messaging Service."""
    text = text.strip()
    if _SHORT_CODE.match(text):
        return text
    if text.startswith("+"):
        try:
            number = phonenumbers.parse(text)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValueError(_("Enter a phone number in international format, e.g. +33612345678."))
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if text.upper().startswith("MG") and _SID.match(text):
        return text
    if _ALPHANUMERIC.match(text):
        return text
    raise ValueError(
        _(
            "Enter a Twilio number (+33...), a short code (36180), a sender ID of up to 11 "
            "letters, digits or spaces with at least one letter, or a Messaging Service SID "
            "(MG...)."
        )
    )


def parse_base_url(text: str) -> str:
    text = text.strip().rstrip("/")
    parts = urlsplit(text)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    if not secure or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(
            _("Enter an https:// address without a path, e.g. https://api.twilio.com.")
        )
    return text


@hookimpl
def relais_register_channels():
    return [TwilioSms]


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "account_sid",
            _l("Account SID"),
            parse=parse_account_sid,
            help=_l("From your Twilio console; starts with AC."),
        ),
        Setting("auth_token", _l("Auth token"), secret=True, parse=parse_auth_token),
        Setting(
            "sender",
            _l("Sender"),
            parse=parse_sender,
            help=_l(
                "A Twilio number (+33...), a short code, an alphanumeric sender ID (up to 11 "
                "characters), or a Messaging Service SID (MG...)."
            ),
        ),
        Setting(
            "promotional_sender",
            _l("Sender of non-essential messages"),
            parse=parse_sender,
            help=_l(
                "Campaigns and news go from it when set, e.g. a promotional short code; "
                "codes and reminders from the sender above."
            ),
        ),
        Setting(
            "base_url",
            _l("API address"),
            default=DEFAULT_BASE_URL,
            parse=parse_base_url,
            help=_l("Leave empty for Twilio's API."),
        ),
    ]
