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
auth token), checked without Twilio's library by the account code both Twilio channels
share (:mod:`plugins.channels.twilio_api`).
"""

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

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
    Receipt,
    Result,
    Setting,
    hookimpl,
    sms_segments,
    utcnow,
)
from plugins.channels.twilio_api import (
    CONCURRENT,
    SID,
    Answer,
    TwilioAccount,
    account_settings,
    base_url_setting,
    json_of,
    requests_pool,
)

kind = "channel"
name = _l("Twilio SMS")
description = _l(
    "Twilio SMS: text messages through your Twilio account, with receipts and replies."
)

MAX_SEGMENTS = 10  # a longer text is refused: shorten it, or send it by another channel

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

_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


class TwilioSms(TwilioAccount):
    """Twilio's Messages API, one request per message; a batch's requests go at once."""

    name, channel = "twilio_sms", "sms"
    resource, listed, since_filter = "Messages.json", "messages", "DateSent>"
    plugin, required = "sms_twilio", ("account_sid", "auth_token", "sender")
    batch_size = CONCURRENT

    # --- sending ---------------------------------------------------------------------------

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        self.check_configured()
        if len(batch) == 1:
            return [self._send(batch[0], timeout)]
        return list(requests_pool().map(lambda message: self._settled(message, timeout), batch))

    def _settled(self, message: Outgoing, timeout: float) -> Result:
        """One message's request, run beside the others of its batch: whatever it raises is
        its own result (unknown outcome: the retry looks it up), not the batch's."""
        try:
            return self._send(message, timeout)
        except Exception as exc:  # noqa: BLE001 - the others' results stand
            error = f"{type(exc).__name__}: {exc}"[:200]
            return Result(message.message_id, TEMPORARY, error=error, unknown=True)

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
        return self.create(message, form, timeout, _answer)

    # --- recovering unknown outcomes -------------------------------------------------------

    def matches(self, item: dict, message: Outgoing, earliest: datetime) -> bool:
        """A message Twilio lists is ours when it went to the same number with the same text,
        created at or after ``earliest``.

        Twilio has no idempotency key and keeps no reference of ours, so a message is
        recognised by its recipient, its text and its creation time. Two lists are read per
        recipient (:meth:`TwilioAccount.lookup`): ``DateSent>=`` the day of ``since`` (what
        Twilio sent since), then the recipient's latest messages unfiltered, because a message
        still queued at Twilio has no ``date_sent`` and a ``DateSent`` filter would hide
        exactly it.
        """
        return _same_message(item, message, earliest)

    # --- webhooks --------------------------------------------------------------------------

    def parse_receipts(self, headers: dict[str, str], body: bytes, form: dict) -> list[Receipt]:
        """A status callback: ``MessageSid``, ``MessageStatus``, ``ErrorCode`` on failures.

        Its time: Twilio's callbacks carry no time of the event, only, on delivered and
        undelivered reports, ``RawDlrDoneDate`` (YYMMDDhhmm, the carrier's delivery report,
        minute precision, in a time zone Twilio does not state). See :func:`receipt_time`.
        """
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if not sid or not SID.match(sid) or not status:
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

    def _sender(self, purpose: str) -> dict[str, str]:
        sender = self.sender(purpose)
        if sender.upper().startswith("MG") and SID.match(sender):
            return {"MessagingServiceSid": sender}
        return {"From": sender}


def _answer(message: Outgoing, response: Answer) -> Result:
    """Map Twilio's answer to a create request onto an outcome."""
    payload = json_of(response)
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


# --- settings ------------------------------------------------------------------------------


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
    if text.upper().startswith("MG") and SID.match(text):
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


@hookimpl
def relais_register_channels():
    return [TwilioSms]


@hookimpl
def relais_plugin_settings():
    return [
        *account_settings(),
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
        base_url_setting(),
    ]
