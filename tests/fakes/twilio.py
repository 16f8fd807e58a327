"""A fake Twilio on loopback, faithful to the Programmable Messaging REST API's published shape.

It serves ``POST`` and ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json`` (HTTP Basic
authentication, form-encoded requests, JSON answers shaped like Twilio's, ``SM`` + 32 hex
sids, Twilio's error bodies and codes), records every message it creates, and posts status
callbacks to each message's ``StatusCallback``: ``sent`` then ``delivered`` (Twilio posts no
callback for a message's initial ``queued`` status), signed with ``X-Twilio-Signature`` by
the official ``twilio`` package's ``RequestValidator``.

Where callbacks go: the fake never sends traffic off this machine. It posts through the
``post(url, content, headers)`` callable it is given, e.g. ``AppServer.post`` of
``tests/fakes/app_server.py``, which reaches the app under test served on loopback while
keeping the callback URL's host (as DNS and a TLS-terminating proxy would): the signed URL is
the StatusCallback itself. Without ``post``, callbacks are recorded as refused, never sent.

A test controls it: :meth:`fail_next` (a status and Twilio error code for the next N
creates), :meth:`time_out_next` (hang longer than the client waits; the message created
at once, late, or never), :attr:`latency` (answer slowly), :attr:`unreachable` (a Twilio error code
per recipient), :attr:`outcome` (``delivered``, or ``undelivered``/``failed`` with a code),
:attr:`callback_delay`, :meth:`hold_callbacks` / :meth:`release_callbacks`, and
:attr:`callbacks_before_answer` (post the callbacks before answering the create request, so
that they reach the app before it records the send). Waits are bounded loops on conditions.
:func:`status_callback` builds a callback's parameters, for tests and benches that post
their own.
"""

import base64
import heapq
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
from twilio.request_validator import RequestValidator

API = "/2010-04-01/Accounts/"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    date_created: datetime
    status: str = "queued"
    date_sent: datetime | None = None
    date_updated: datetime | None = None
    error_code: int | None = None

    def resource(self) -> dict:
        """The Message resource as Twilio's API returns it."""
        uri = f"{API}{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated or self.date_created),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }


@dataclass
class Callback:
    """A status callback the fake posted (or could not post)."""

    url: str
    params: dict[str, str]
    status: int | None  # the app's HTTP answer; None: refused (no route) or failed


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str


@dataclass
class FakeTwilio:
    """A loopback Twilio; use as a context manager, or call :meth:`start` and :meth:`close`."""

    resource: ClassVar[str] = "Messages.json"  # what it serves (tests/fakes/twilio_voice.py)
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    callback_delay: float = 0.01  # seconds between a create and each status callback
    latency: float = 0.0  # seconds before answering any request
    outcome: tuple[str, int | None] = ("delivered", None)
    callbacks_before_answer: bool = False
    unreachable: dict[str, int] = field(default_factory=dict)  # To -> Twilio error code
    post: Callable | None = None  # post(url, content, headers) -> response with status_code
    # Threads posting callbacks side by side, as Twilio does; with one (tests), a message's
    # callbacks always come in their order.
    callback_threads: int = 1

    def __post_init__(self):
        self.messages: list[FakeMessage] = []
        self.requests: list[dict] = []  # every create request: its form and auth
        self.callbacks: list[Callback] = []
        self._failures: list[_Failure] = []
        self._hangs: list[tuple[float, bool]] = []
        self._held = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._due: list[tuple[float, int, FakeMessage, str]] = []
        self._order = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None

    # --- life --------------------------------------------------------------------------------

    def start(self) -> "FakeTwilio":
        fake = self

        class Handler(_Handler):
            twilio = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="fake-twilio", daemon=True
            ),
            *(
                threading.Thread(target=self._post_callbacks, name="fake-twilio-cb", daemon=True)
                for _ in range(self.callback_threads)
            ),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    # --- control -----------------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        code: int | None = None,
        message: str = "Internal Server Error",
    ) -> None:
        """Answer the next ``count`` create requests with an error (no message created)."""
        self._failures += [_Failure(status, code, message)] * count

    def time_out_next(
        self, count: int = 1, seconds: float = 5.0, created: bool | str = False
    ) -> None:
        """Hang ``seconds``, then drop the connection, for the next ``count`` creates.

        ``created``: False, the request is lost (no message); True, the message is created at
        once and only the answer is lost; ``"late"``, Twilio is slow: it creates the message
        after the wait, when the client has given up (and may have looked for it already).
        """
        self._hangs += [(seconds, created)] * count

    def hold_callbacks(self) -> None:
        self._held = True

    def release_callbacks(self) -> None:
        with self._wake:
            self._held = False
            self._wake.notify_all()

    # --- what it saw -------------------------------------------------------------------------

    def sent_to(self, to: str) -> list[FakeMessage]:
        return [m for m in self.messages if m.to == to]

    def duplicates(self) -> dict[tuple[str, str], int]:
        """(To, Body) pairs Twilio was asked to create more than once."""
        counts = Counter((m.to, m.body) for m in self.messages)
        return {key: n for key, n in counts.items() if n > 1}

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[Callback]:
        """Wait (bounded) until ``count`` callbacks were posted; return them."""
        deadline = time.monotonic() + timeout
        while len(self.callbacks) < count:
            assert time.monotonic() < deadline, f"{len(self.callbacks)} of {count} callbacks"
            time.sleep(0.01)
        return list(self.callbacks)

    def signature(self, url: str, params: dict[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)

    # --- the API -----------------------------------------------------------------------------

    def _form(self, pairs: list[tuple[str, str]]) -> dict:
        """A create request's form parameters (the last value of a repeated one)."""
        return dict(pairs)

    def _create(self, account: str, form: dict[str, str], auth_ok: bool) -> tuple[int, dict]:
        self.requests.append({"form": form, "auth_ok": auth_ok})
        if not auth_ok or account != self.account_sid:
            return 401, _error(20003, "Authenticate", 401)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            hang = self._hangs.pop(0) if self._hangs else None
        if hang and hang[1] is False:
            self._stopping.wait(hang[0])
            return 0, {}  # dropped: the connection closes without an answer
        if hang and hang[1] == "late" and self._stopping.wait(hang[0]):
            return 0, {}  # closing: the message is never created
        if failure:
            return failure.status, _error(failure.code, failure.message, failure.status)
        status, payload = self._take(account, form)
        if status == 201 and hang:
            if hang[1] is True:
                self._stopping.wait(hang[0])
            return 0, {}
        return status, payload

    def _take(self, account: str, form: dict[str, str]) -> tuple[int, dict]:
        """Check and create a message (Twilio's status and answer), its callbacks scheduled."""
        to, body = form.get("To", ""), form.get("Body")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return 400, _error(21604, "A 'To' phone number is required.", 400)
        if not sender and not service:
            return 400, _error(21603, "A 'From' phone number is required.", 400)
        if not body:
            return 400, _error(21602, "Message body is required.", 400)
        if not _E164.match(to):
            return 400, _error(21211, f"The 'To' number {to} is not a valid phone number.", 400)
        if to in self.unreachable:
            code = self.unreachable[to]
            return 400, _error(code, f"The 'To' number {to} cannot receive this message.", 400)
        if len(body) > 1600:
            return 400, _error(
                21617, "The concatenated message body exceeds the 1600 character limit.", 400
            )
        now = datetime.now(UTC)
        message = FakeMessage(
            sid="SM" + uuid.uuid4().hex,
            account_sid=account,
            to=to,
            from_=sender,
            messaging_service_sid=service,
            body=body,
            status_callback=form.get("StatusCallback"),
            date_created=now,
        )
        with self._lock:
            self.messages.append(message)
        if message.status_callback:
            self._schedule(message, self._statuses())
        return 201, message.resource()

    def _schedule(self, record, statuses: list[str]) -> None:
        """Post a created record's ``statuses`` as callbacks, one every ``callback_delay``
        (at once, before the create's answer, with ``callbacks_before_answer``)."""
        if self.callbacks_before_answer:
            for status in statuses:
                self._advance(record, status)
            return
        with self._wake:
            for step, status in enumerate(statuses, start=1):
                due = time.monotonic() + step * self.callback_delay
                heapq.heappush(self._due, (due, next(self._order), record, status))
            self._wake.notify_all()

    def _list(self, account: str, query: dict[str, list[str]], auth_ok: bool) -> tuple[int, dict]:
        if not auth_ok or account != self.account_sid:
            return 401, _error(20003, "Authenticate", 401)
        found = list(self.messages)
        if "To" in query:
            found = [m for m in found if m.to == query["To"][0]]
        if "From" in query:
            found = [m for m in found if m.from_ == query["From"][0]]
        for name, keep in (
            ("DateSent", lambda sent, day: sent.date() == day.date()),
            ("DateSent>", lambda sent, day: sent >= day),
            ("DateSent<", lambda sent, day: sent <= day),
        ):
            if name in query:  # a filter on date_sent leaves out messages not sent yet
                day = _date(query[name][0])
                found = [m for m in found if m.date_sent and keep(m.date_sent, day)]
        found.sort(key=lambda m: m.date_created, reverse=True)  # most recent first
        size = min(int(query.get("PageSize", ["50"])[0]), 1000)
        page = int(query.get("Page", ["0"])[0])
        chunk = found[page * size : (page + 1) * size]
        uri = f"{API}{account}/Messages.json"
        more = len(found) > (page + 1) * size
        return 200, {
            "end": page * size + max(len(chunk) - 1, 0),
            "first_page_uri": f"{uri}?PageSize={size}&Page=0",
            "next_page_uri": f"{uri}?PageSize={size}&Page={page + 1}" if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": f"{uri}?PageSize={size}&Page={page - 1}" if page else None,
            "messages": [m.resource() for m in chunk],
            "start": page * size,
            "uri": f"{uri}?PageSize={size}&Page={page}",
        }

    # --- status callbacks --------------------------------------------------------------------

    def _statuses(self) -> list[str]:
        return ["sent", self.outcome[0]]

    def _post_callbacks(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                now = time.monotonic()
                if self._held or not self._due or self._due[0][0] > now:
                    wait = None if self._held or not self._due else self._due[0][0] - now
                    self._wake.wait(timeout=min(wait or 0.05, 0.05))
                    continue
                _, _, message, status = heapq.heappop(self._due)
            self._advance(message, status)

    def _advance(self, message: FakeMessage, status: str) -> None:
        """Move a message to ``status`` and post its signed callback."""
        now = datetime.now(UTC)
        message.status, message.date_updated = status, now
        if status == "sent":
            message.date_sent = now
        if status in ("undelivered", "failed"):
            message.error_code = self.outcome[1] or 30008
        params = status_callback(
            message.account_sid,
            message.sid,
            status,
            message.to,
            sender=message.from_,
            messaging_service_sid=message.messaging_service_sid,
            error_code=message.error_code if status in ("undelivered", "failed") else None,
            done=now if status in ("delivered", "undelivered") else None,
        )
        self.callbacks.append(self._post(message.status_callback, params))

    def _post(self, url: str, params: dict[str, str]) -> Callback:
        if self.post is None:
            return Callback(url, params, None)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "X-Twilio-Signature": self.signature(url, params),
        }
        try:
            status = self.post(url, urlencode(params).encode(), headers).status_code
        except (OSError, ValueError, httpx.HTTPError):  # ValueError: not the app's address
            status = None
        return Callback(url, params, status)


class _Handler(BaseHTTPRequestHandler):
    twilio: FakeTwilio
    # Kept-alive connections, as Twilio's API serves them: a worker's requests reuse them.
    protocol_version = "HTTP/1.1"
    # An answer's headers and body leave at once (TCP_NODELAY): otherwise Nagle's algorithm
    # holds the body until the client acknowledges the headers, which a client delays up
    # to 40 ms, and every call on a kept-alive connection waits that long.
    disable_nagle_algorithm = True

    def do_POST(self):
        account = self._account(self.twilio.resource)
        if account is None:
            return self._send(404, _error(20404, "The requested resource was not found", 404))
        length = int(self.headers.get("Content-Length") or 0)
        pairs = parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)
        self._pause()
        self._send(*self.twilio._create(account, self.twilio._form(pairs), self._auth_ok()))

    def do_GET(self):
        account = self._account(self.twilio.resource)
        if account is None:
            return self._send(404, _error(20404, "The requested resource was not found", 404))
        self._pause()
        query = parse_qs(urlsplit(self.path).query)
        self._send(*self.twilio._list(account, query, self._auth_ok()))

    def _account(self, resource: str) -> str | None:
        match = re.fullmatch(
            rf"{API}(AC[0-9a-f]{{32}})/{re.escape(resource)}", urlsplit(self.path).path
        )
        return match.group(1) if match else None

    def _auth_ok(self) -> bool:
        header = self.headers.get("Authorization", "")
        expected = f"{self.twilio.account_sid}:{self.twilio.auth_token}".encode()
        return header == "Basic " + base64.b64encode(expected).decode()

    def _pause(self) -> None:
        if self.twilio.latency:
            self.twilio._stopping.wait(self.twilio.latency)

    def _send(self, status: int, payload: dict) -> None:
        if status == 0:
            self.close_connection = True
            return  # drop the connection
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests read the records
        pass


def status_callback(
    account_sid: str,
    sid: str,
    status: str,
    to: str,
    sender: str | None = None,
    messaging_service_sid: str | None = None,
    error_code: int | None = None,
    done: datetime | None = None,
) -> dict[str, str]:
    """The form parameters of Twilio's status callback for message ``sid`` moving to
    ``status``, as Twilio posts them to its ``StatusCallback`` (before signing):
    ``ErrorCode`` when given (a failure), ``RawDlrDoneDate`` (the carrier's report,
    YYMMDDhhmm) when ``done`` is given (delivered and undelivered reports)."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "From": sender or "",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": to,
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    if done is not None:
        params["RawDlrDoneDate"] = done.strftime("%y%m%d%H%M")
    return params


def _error(code: int | None, message: str, status: int) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
        "status": status,
    }


def _rfc2822(at: datetime | None) -> str | None:
    return format_datetime(at) if at else None


def _date(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 datetime, as Twilio's filters take."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
