"""Infobip SMS: Infobip's SMS API v3, many messages per request, JSON delivery reports, replies.

The protocol, as Infobip publishes it (https://www.infobip.com/docs/api/channels/sms):

- Send: ``POST {base_url}/sms/3/messages`` with ``Authorization: App <api key>`` and
  ``{"messages": [{"sender", "destinations": [{"to", "messageId"}], "content": {"text"},
  "webhooks": {"delivery": {"url"}, "contentType": "application/json"}}]}``. The older
  ``/sms/2/text/advanced`` (``from``, ``text``, ``notifyUrl``) is deprecated; v3 is used.
  Messages with the same text share one message object (one per text, many destinations).
- Infobip has no idempotency key: our message id goes as the destination's ``messageId``,
  which Infobip keeps as its own id and echoes in reports and logs. :meth:`lookup` asks
  ``GET /sms/3/logs?messageId=...`` (logs are kept 48 hours) which messages it already has.
  A call whose answer is lost (read timeout, dropped connection, HTTP 504) is of unknown
  outcome, and the core looks its messages up before sending them again; a call that never
  left (connection refused, connect timeout: :data:`plugins.channels.http_api.NEVER_SENT`)
  is a plain temporary failure. A write that fails midway counts as a lost answer (urllib3
  does not tell them apart): looked up, never sent twice.
- Delivery reports come in batches (up to 100 per request by default) as
  ``{"results": [{"messageId", "to", "sender", "sentAt", "doneAt", "status": {"groupName"},
  "error"}]}`` to the per-message delivery URL, the clinic's
  ``/webhooks/infobip_sms/receipts``. They are matched on (``infobip_sms``, ``messageId``) as
  the provider's reference, so a late report never touches a message that another provider
  or channel carried since.
- Replies (MO messages) come as ``{"results": [{"messageId", "from", "to", "text",
  "cleanText", "keyword", "receivedAt"}]}`` to the URL the operator sets for the number in
  Infobip (forwarding, or Subscriptions Management): ``https://hooks.<domain>/webhooks/
  infobip_sms/<COUNTRY>/inbound``.

Webhook authentication: Infobip's webhooks carry no signature that its public API documents
(its Subscriptions Management lists an HMAC type without publishing the signature's format).
Two ways in, both checked in constant time against the plugin's ``webhook_secret`` and,
while the operator rotates it, its ``previous_webhook_secret``; anything else is refused
(401), and so is everything while no secret is set:

- HTTP Basic credentials that the operator sets in Infobip (Subscriptions Management >
  authentication settings, type BASIC: any user name, the secret as password), for the
  reply forwarding of the numbers and any subscription-based report.
- For the delivery reports of the per-message URL (which cannot rely on those settings),
  each message's ``webhooks.callbackData``, which Infobip echoes in every report: a token
  ``r1.<issued at>.<HMAC-SHA256>`` of the URL's host and path and its time of issue under
  the secret. It travels in request bodies only, never in a URL (access logs of the proxy
  and of gunicorn keep no secret), is good for one clinic's receipts only, for
  ``TOKEN_LIFETIME`` after the send, and a rotated secret ends every token made with the
  secret before the previous one.
"""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from itertools import islice
from urllib.parse import urlencode, urlsplit

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
    utcnow,
)
from plugins.channels import http_api
from plugins.channels.http_api import NEVER_SENT, Answer

kind = "channel"
name = _l("Infobip SMS")
description = _l("Infobip SMS: many messages per request, delivery reports and replies.")

SEND_PATH = "/sms/3/messages"
LOGS_PATH = "/sms/3/logs"
LOOKUP_CHUNK = 50  # message ids per logs query: keeps the query string short
CLOCK_SKEW = timedelta(minutes=5)  # Infobip's clock and ours: look up a little earlier
# How long a message's report token is taken: Infobip tries a message for 48 hours at most
# (its validity period) and retries a report it could not post for some hours more.
TOKEN_LIFETIME = timedelta(days=4)
SCHEME = "r1"  # the format of report tokens

# Infobip's status groups (groupName); the send answer is an acceptance, not an outcome.
TAKEN = frozenset({"PENDING", "ACCEPTED", "DELIVERED"})
FINAL = {
    "DELIVERED": "delivered",
    "UNDELIVERABLE": "undelivered",
    "EXPIRED": "undelivered",
    "REJECTED": "undelivered",
}
# REJECTED statuses that say the number cannot receive SMS (invalid, unknown, opted out):
# the next channel of the plan, not another SMS provider, is the way to reach the patient.
NOT_A_PHONE = frozenset(
    {
        "REJECTED_DESTINATION",
        "REJECTED_PREFIX_MISSING",
        "REJECTED_DESTINATION_NOT_REGISTERED",
        "REJECTED_INVALID_DESTINATION",
        "REJECTED_DND",
        "MISSING_TO",
    }
)


class InfobipSms(Provider):
    """Infobip's SMS API (v3): up to 100 messages per call, our id as Infobip's."""

    name, channel = "infobip_sms", "sms"
    batch_size = 100

    # --- sending -----------------------------------------------------------------------------

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        answer = self._call("POST", SEND_PATH, timeout, self._request(batch))
        by_id = {m.get("messageId"): m for m in answer.get("messages") or [] if isinstance(m, dict)}
        return [_result(o, by_id[str(o.message_id)]) for o in batch if str(o.message_id) in by_id]

    def lookup(self, batch: list[Outgoing], since: datetime, timeout: float) -> list[Result]:
        """The messages of ``batch`` Infobip already has (its logs, by our message id)."""
        wanted = {str(o.message_id) for o in batch}
        found: dict[str, Result] = {}
        ids = iter(sorted(wanted))
        while chunk := list(islice(ids, LOOKUP_CHUNK)):
            query = [("messageId", i) for i in chunk] + [
                ("sentSince", _infobip_time(since - CLOCK_SKEW)),
                ("limit", "1000"),
            ]
            path = f"{LOGS_PATH}?{urlencode(query)}"
            for log in self._call("GET", path, timeout).get("results") or []:
                ref, group = log.get("messageId"), (log.get("status") or {}).get("groupName")
                if ref in wanted and group != "REJECTED":  # a rejected one was never sent
                    found[ref] = Result(uuid.UUID(ref), ACCEPTED, provider_ref=ref)
        return list(found.values())

    def _request(self, batch: list[Outgoing]) -> dict:
        groups = {}
        for o in batch:  # one message object per text (a campaign is one object)
            sender = self.sender(o.purpose)
            key = (o.text, o.callback_url, sender)
            if key not in groups:
                message = {"destinations": [], "content": {"text": o.text}}
                if sender:
                    message["sender"] = sender
                secret = self.settings.get("webhook_secret")
                if o.callback_url and secret:  # no reports without a secret to check them
                    message["webhooks"] = {
                        "delivery": {"url": o.callback_url},
                        "contentType": "application/json",
                        "callbackData": report_token(secret, o.callback_url, utcnow()),
                    }
                groups[key] = message
            groups[key]["destinations"].append(
                {"to": o.to.removeprefix("+"), "messageId": str(o.message_id)}
            )
        return {"messages": list(groups.values())}

    def _call(self, method: str, path: str, timeout: float, payload: dict | None = None) -> dict:
        """Infobip's answer to ``method`` on ``path`` (with ``payload`` as JSON), over the
        channels' kept-alive connections (:mod:`plugins.channels.http_api`).

        :raises ProviderError: temporary when Infobip surely never got the request or
            refused it for now, of unknown outcome when it may have taken it (a lost
            answer), permanent when it refuses it for good.
        """
        base_url, api_key = self.settings.get("base_url"), self.settings.get("api_key")
        if not base_url or not api_key:
            raise ProviderError("Infobip's base URL and API key are not set", PERMANENT)
        headers = {
            "Authorization": f"App {api_key}",
            "Accept": "application/json",
            "User-Agent": "relais-sms-infobip",
        }
        body = None
        if payload is not None:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = http_api.request(method, base_url.rstrip("/") + path, headers, timeout, body)
        except NEVER_SENT as exc:
            raise ProviderError(f"Infobip out of reach: {type(exc).__name__}", TEMPORARY) from exc
        if response.status_code == 504:  # a gateway gave up waiting: Infobip may have it
            raise ProviderError("Infobip: HTTP 504", TEMPORARY, unknown=True)
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderError(f"Infobip: HTTP {response.status_code}", TEMPORARY)
        if response.status_code >= 400:  # 401/403: credentials; 400: a request it refuses
            raise ProviderError(
                f"Infobip: HTTP {response.status_code} {_error_text(response)}", PERMANENT
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise ProviderError("Infobip: an answer that is not JSON", TEMPORARY) from exc
        if not isinstance(answer, dict):
            raise ProviderError("Infobip: an answer that is not a JSON object", TEMPORARY)
        return answer

    # --- webhooks ----------------------------------------------------------------------------

    def verify(self, url: str, headers: dict[str, str], body: bytes, form: dict) -> None:
        secrets = [
            s
            for s in (self.settings.get(k) for k in ("webhook_secret", "previous_webhook_secret"))
            if s
        ]
        if not secrets:
            raise SignatureError("no webhook secret is set for Infobip")
        password = _basic_password(_header(headers, "Authorization"))
        if password is not None and any(
            hmac.compare_digest(password.encode(), s.encode()) for s in secrets
        ):
            return
        # A send's reports share its token: each distinct one is checked once.
        tokens = {t if isinstance(t, str) else None for t in _callback_data(body)}
        now = utcnow()
        if tokens and all(
            any(_token_ok(token, secret, url, now) for secret in secrets) for token in tokens
        ):
            return
        raise SignatureError("Infobip webhook without the operator's secret")

    def parse_receipts(self, headers: dict[str, str], body: bytes, form: dict) -> list[Receipt]:
        receipts = []
        for report in _results(body):
            try:
                ref = report["messageId"]
                group = report["status"]["groupName"]
                when = report.get("doneAt") or report.get("sentAt")
                if not isinstance(ref, str) or not isinstance(group, str) or not when:
                    raise ValueError("a report without messageId, status or time")
                receipts.append(
                    Receipt(
                        status=FINAL.get(group, "sent"),
                        at=_parse_time(when),
                        # Matched on (provider, reference) only, never on our id alone: a
                        # late report of a message that went on by another provider or
                        # channel is not about what that one did.
                        provider_ref=ref,
                        error=_report_error(report) if group != "DELIVERED" else None,
                    )
                )
            except (KeyError, TypeError, AttributeError, OverflowError) as exc:
                raise ValueError(f"malformed Infobip delivery report: {exc!r}") from exc
        return receipts

    def parse_inbound(self, headers: dict[str, str], body: bytes, form: dict) -> list[Inbound]:
        replies = []
        for message in _results(body):
            try:
                sender, text = message["from"], message.get("text")
                if text is None:
                    text = message.get("cleanText")
                if not isinstance(sender, str) or not isinstance(text, str):
                    raise ValueError("a reply without sender or text")
                if not isinstance(message.get("messageId") or "", str):
                    raise ValueError("a reply whose messageId is not a text")
                replies.append(
                    Inbound(
                        sender=_e164(sender),
                        recipient=str(message.get("to") or ""),
                        text=text,
                        at=_parse_time(message["receivedAt"]),
                        provider_ref=message.get("messageId"),
                    )
                )
            except (KeyError, TypeError, AttributeError, OverflowError) as exc:
                raise ValueError(f"malformed Infobip reply: {exc!r}") from exc
        return replies


def _result(outgoing: Outgoing, answer: dict) -> Result:
    """One message's status in Infobip's answer to a send."""
    status = answer.get("status") or {}
    group, name = status.get("groupName"), status.get("name") or "?"
    ref = str(outgoing.message_id)
    if group in TAKEN:
        return Result(outgoing.message_id, ACCEPTED, provider_ref=ref)
    error = f"{name}: {status.get('description') or group}"[:200]
    outcome = UNREACHABLE if name in NOT_A_PHONE else PERMANENT
    return Result(outgoing.message_id, outcome, provider_ref=ref, error=error)


def _results(body: bytes) -> list[dict]:
    data = json.loads(body)  # a ValueError (400) when it is not JSON
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ValueError("an Infobip webhook without a results list")
    return results


def _report_error(report: dict) -> str | None:
    error = report.get("error") or {}
    status = report.get("status") or {}
    if error and error.get("groupName") != "OK":
        return f"{error.get('name')}: {error.get('description')}"[:200]
    return f"{status.get('name')}: {status.get('description')}"[:200]


def _parse_time(text) -> datetime:
    """Infobip's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (``+0000`` or ``+00:00``), as aware UTC."""
    if not isinstance(text, str):
        raise ValueError("a time that is not a string")
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"a time without its offset: {text}")
    return at.astimezone(UTC)


def _infobip_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def _e164(number: str) -> str:
    number = number.strip()
    return f"+{number}" if number.isdigit() else number


def report_token(secret: str, url: str, issued: datetime) -> str:
    """A message's ``callbackData``: the secret's HMAC of its delivery URL's host and path
    and of the time of issue (whole seconds), with that time."""
    stamp = str(int(issued.timestamp()))
    return f"{SCHEME}.{stamp}.{_mac(secret, url, stamp)}"


def _mac(secret: str, url: str, stamp: str) -> str:
    parts = urlsplit(url)
    message = f"{parts.netloc.rpartition('@')[2].lower()}{parts.path}|{stamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _token_ok(token: object, secret: str, url: str, now: datetime) -> bool:
    """Whether a report's token was made for this URL with this secret, not too long ago."""
    if not isinstance(token, str):
        return False
    version, _, rest = token.partition(".")
    stamp, _, mac = rest.partition(".")
    if version != SCHEME or not stamp.isdigit() or len(stamp) > 12:
        return False
    if not hmac.compare_digest(mac.encode(), _mac(secret, url, stamp).encode()):
        return False
    issued = datetime.fromtimestamp(int(stamp), UTC)
    return issued - CLOCK_SKEW <= now <= issued + TOKEN_LIFETIME


def _callback_data(body: bytes) -> list:
    """The ``callbackData`` of every report of a webhook body; [] when there is none."""
    try:
        results = _results(body)
    except ValueError:
        return []
    return [r.get("callbackData") for r in results]


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


def _basic_password(value: str) -> str | None:
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:
        return None
    return decoded.partition(":")[2] if ":" in decoded else None


def _error_text(response: Answer) -> str:
    """The words of Infobip's error answer (v3 ``description``, or the older
    ``requestError.serviceException.text``)."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:100]
    if isinstance(data, dict):
        exception = (data.get("requestError") or {}).get("serviceException") or {}
        return str(data.get("description") or exception.get("text") or "")[:100]
    return ""


# --- settings --------------------------------------------------------------------------------


def _base_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(_("Give the address Infobip shows you, e.g. https://xyz.api.infobip.com."))
    return text.rstrip("/")


def _sender(text: str) -> str:
    digits = text.removeprefix("+")
    if not (digits.isdigit() and len(digits) <= 15) and not (text.isalnum() and len(text) <= 11):
        raise ValueError(_("At most 11 letters and digits, or a phone number."))
    return text


def _secret(text: str) -> str:
    if len(text) < 16:
        raise ValueError(_("At least 16 characters."))
    return text


@hookimpl
def relais_register_channels():
    return [InfobipSms]


@hookimpl
def relais_plugin_settings():
    return [
        Setting("api_key", _l("API key"), secret=True, help=_l("From Infobip's API keys page.")),
        Setting(
            "base_url",
            _l("Base URL"),
            help=_l("Your account's own address, e.g. https://xyz.api.infobip.com."),
            parse=_base_url,
        ),
        Setting(
            "sender",
            _l("Sender ID"),
            help=_l("The name or number patients see (at most 11 letters and digits)."),
            parse=_sender,
        ),
        Setting(
            "promotional_sender",
            _l("Sender of non-essential messages"),
            help=_l(
                "Campaigns and news go from it when set, e.g. a promotional short code; "
                "codes and reminders from the sender above."
            ),
            parse=_sender,
        ),
        Setting(
            "webhook_secret",
            _l("Webhook secret"),
            secret=True,
            help=_l(
                "Set it in Infobip as the password of BASIC authentication settings for the "
                "reply forwarding of your numbers; delivery reports carry a token made from it."
            ),
            parse=_secret,
        ),
        Setting(
            "previous_webhook_secret",
            _l("Previous webhook secret"),
            secret=True,
            help=_l(
                "While you change the webhook secret: the one it replaces, still accepted "
                "until Infobip uses the new one and the reports of earlier messages are in "
                "(4 days). Then enter the new secret here too."
            ),
            parse=_secret,
        ),
    ]
