"""What Twilio's channels share: an account, its HTTP client, signed webhooks and lookups.

Not a plugin (it has no ``kind``): the helpers the ``sms_twilio`` and ``voice_twilio``
channels both build on, so that neither imports the other.

- :class:`TwilioAccount`, the base of both providers: the account's address and HTTP Basic
  authentication, the check of ``X-Twilio-Signature`` on webhooks, and settling a call whose
  outcome is unknown with Twilio's list API (:meth:`TwilioAccount.lookup`);
- :func:`request`, Twilio's API over the channels' kept-alive connections
  (:mod:`plugins.channels.http_api`), :func:`json_of` for its answers, and
  :func:`requests_pool`, the threads that send a batch's requests at once;
- :func:`signature_for`, Twilio's request signature;
- the settings both declare: :func:`account_settings` and :func:`base_url_setting`.
"""

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from urllib3.exceptions import HTTPError

from core.plugin_api import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    Outgoing,
    Provider,
    ProviderError,
    Result,
    Setting,
    SignatureError,
    utcnow,
)
from plugins.channels import http_api
from plugins.channels.http_api import CONNECTIONS, NEVER_SENT, Answer

API_VERSION = "2010-04-01"
DEFAULT_BASE_URL = "https://api.twilio.com"
SKEW = timedelta(seconds=60)  # allowance between our clock and Twilio's, in lookups

SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$", re.IGNORECASE)
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class TwilioAccount(Provider):
    """What Twilio's APIs share: an account's address and Basic authentication, webhooks
    signed with ``X-Twilio-Signature``, and settling calls of unknown outcome with a lookup.

    Subclasses (messages, voice calls) give ``try_send`` and the parsers, name their list
    resource, its JSON key, its date filter and the settings they need, and say which listed
    item answers for which of our messages (:meth:`matches`).
    """

    resource: ClassVar[str]  # e.g. "Messages.json"
    listed: ClassVar[str]  # the list's key in Twilio's answer, e.g. "messages"
    since_filter: ClassVar[str]  # e.g. "DateSent>"
    plugin: ClassVar[str]  # the plugin's name, for the operator: "sms_twilio"
    required: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token")

    def matches(self, item: dict, message: Outgoing, earliest: datetime) -> bool:
        """Whether Twilio's listed ``item`` is ``message``, created at or after ``earliest``."""
        raise NotImplementedError

    def lookup(self, batch: list[Outgoing], since: datetime, timeout: float) -> list[Result]:
        """Find what Twilio created for ``batch`` since ``since`` (less :data:`SKEW`).

        Twilio has no idempotency key and keeps no reference of ours: each listed item that
        :meth:`matches` a message answers for it, and for one of ours at most.

        :raises ProviderError: when Twilio does not answer the list (the caller retries later).
        """
        self.check_configured()
        earliest = since - SKEW
        listed: dict[str, list[dict]] = {}
        taken: set[str] = set()
        found = []
        for message in batch:
            if message.to not in listed:
                listed[message.to] = self._listed(message.to, earliest, timeout)
            for item in listed[message.to]:
                sid = item.get("sid")
                if sid in taken or not self.matches(item, message, earliest):
                    continue
                taken.add(sid)
                found.append(Result(message.message_id, ACCEPTED, provider_ref=sid, looked_up=True))
                break
        return found

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
                response = request(
                    "GET", f"{self.url(self.resource)}?{urlencode(params)}", self.auth(), timeout
                )
            except HTTPError as exc:
                raise ProviderError(f"Twilio's list did not answer: {exc}") from exc
            if response.status_code != 200:
                raise ProviderError(f"Twilio's list answered HTTP {response.status_code}")
            for item in json_of(response).get(self.listed) or []:
                seen.setdefault(item.get("sid"), item)
        return list(seen.values())

    def create(
        self,
        message: Outgoing,
        form: dict,
        timeout: float,
        answer: "Callable[[Outgoing, Answer], Result]",
    ) -> Result:
        """POST ``form`` to create ``message`` at Twilio: ``answer`` maps Twilio's answer to a
        Result; a call that got none is temporary, or settled with the list API when it may
        have reached Twilio."""
        started = utcnow()
        try:
            response = request("POST", self.url(self.resource), self.auth(), timeout, form)
        except NEVER_SENT as exc:  # no connection (refused, unresolved, timed out)
            # The request never reached Twilio: safe to send again.
            return Result(message.message_id, TEMPORARY, error=f"Twilio unreachable: {exc}"[:200])
        except HTTPError as exc:
            # Sent, but no (complete) answer: Twilio may have created it.
            return self.settle(message, started, timeout, exc)
        return answer(message, response)

    def settle(self, message: Outgoing, started: datetime, timeout: float, exc) -> Result:
        """The outcome of a call that got no answer: whatever the list API says now.

        Twilio lists an item as soon as it creates it; one it creates later still (a very
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
        signature = header(headers, "X-Twilio-Signature")
        if not token or not signature:
            raise SignatureError("no X-Twilio-Signature, or no auth token set")
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        signed = _signed_params(params)  # once, whichever URL it was signed with
        for candidate in urls_twilio_may_have_signed(url):
            if hmac.compare_digest(_sign(token, candidate + signed), signature.encode()):
                return
        raise SignatureError("X-Twilio-Signature does not match")

    def check_configured(self) -> None:
        """Refuse to call Twilio without the settings it needs (permanent: the next provider)."""
        missing = [n for n in self.required if not self.settings.get(n)]
        if missing:
            raise ProviderError(
                f"{self.plugin} is not configured: set its {', '.join(missing)}", PERMANENT
            )

    def url(self, resource: str) -> str:
        base = (self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/{API_VERSION}/Accounts/{self.settings['account_sid']}/{resource}"

    def auth(self) -> tuple[str, str]:
        return self.settings["account_sid"], self.settings["auth_token"]


def signature_for(token: str, url: str, params) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(token, url + names and values)).

    Parameters are sorted by name, and the values of a repeated name by value, each
    distinct pair once (as Twilio's libraries compute it).
    """
    return _sign(token, url + _signed_params(params)).decode()


def _signed_params(params) -> str:
    """The parameters as Twilio signs them: names and values, sorted."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(values) for value in sorted(values[name]))


def _sign(token: str, data: str) -> bytes:
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest())


def urls_twilio_may_have_signed(url: str) -> list[str]:
    """The URL as received, as ``https``, each with and without its default port."""
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


def header(headers: dict[str, str], name: str) -> str | None:
    """A webhook's header, whatever its case."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def json_of(response: "Answer") -> dict:
    """Twilio's answer as a dict; empty when it is not a JSON object."""
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


# Requests a worker has in flight at once: Twilio takes one message per request, so a batch's
# requests go side by side over the pool's kept-alive connections (one each).
CONCURRENT = CONNECTIONS


def request(
    method: str, url: str, auth: tuple[str, str], timeout: float, form: dict | None = None
) -> Answer:
    """Call Twilio's API (:func:`plugins.channels.http_api.request`), with HTTP Basic
    authentication and ``form`` encoded as Twilio takes it.

    :raises urllib3.exceptions.HTTPError: no (complete) answer; one of
        :data:`~plugins.channels.http_api.NEVER_SENT` when the request never left.
    """
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "User-Agent": "relais-twilio"}
    body = None
    if form is not None:
        body = urlencode(form, doseq=True)  # a list: the name repeated, as Twilio takes it
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return http_api.request(method, url, headers, timeout, body)


_pools: dict[int, ThreadPoolExecutor] = {}


def requests_pool() -> ThreadPoolExecutor:
    """The threads that send a batch's requests at once, one set per process."""
    pid = os.getpid()
    found = _pools.get(pid)
    if found is None:
        _pools.clear()
        found = _pools[pid] = ThreadPoolExecutor(CONCURRENT, thread_name_prefix="relais-twilio")
    return found


# --- settings ------------------------------------------------------------------------------


def parse_account_sid(text: str) -> str:
    text = text.strip()
    if not (text.upper().startswith("AC") and SID.match(text)):
        raise ValueError(
            _("Enter the account SID from your Twilio console (AC and 32 characters).")
        )
    return text


def parse_auth_token(text: str) -> str:
    text = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise ValueError(_("Enter the auth token from your Twilio console (32 characters)."))
    return text


def parse_base_url(text: str) -> str:
    text = text.strip().rstrip("/")
    parts = urlsplit(text)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    if not secure or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(
            _("Enter an https:// address without a path, e.g. https://api.twilio.com.")
        )
    return text


def account_settings() -> list[Setting]:
    """The account's settings, the first of each Twilio channel's: its SID and auth token."""
    return [
        Setting(
            "account_sid",
            _l("Account SID"),
            parse=parse_account_sid,
            help=_l("From your Twilio console; starts with AC."),
        ),
        Setting("auth_token", _l("Auth token"), secret=True, parse=parse_auth_token),
    ]


def base_url_setting() -> Setting:
    """Where Twilio's API is (a loopback fake in tests), the last of each channel's settings."""
    return Setting(
        "base_url",
        _l("API address"),
        default=DEFAULT_BASE_URL,
        parse=parse_base_url,
        help=_l("Leave empty for Twilio's API."),
    )
