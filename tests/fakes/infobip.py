"""FakeInfobip: Infobip's SMS API v3 on 127.0.0.1, as Infobip documents it.

What it plays (https://www.infobip.com/docs/api/channels/sms):

- ``POST /sms/3/messages`` (``Authorization: App <api key>``): many messages per request, each
  with ``sender``, ``destinations: [{"to", "messageId"}]``, ``content.text`` and an optional
  ``webhooks: {"delivery": {"url"}, "contentType"}``. Answers ``{"bulkId", "messages":
  [{"messageId", "status", "destination", "details": {"messageCount"}}]}``; a client's
  ``messageId`` is kept as the message's id (Infobip has no idempotency key: sending the same
  id twice sends twice, and :meth:`duplicates` shows it).
- ``GET /sms/3/logs?messageId=...&sentSince=...``: the logs of those messages.
- Delivery reports: ``{"results": [...]}`` posted to each message's delivery URL in buckets
  of at most ``bucket_size`` (Infobip's default: 100), after ``report_delay`` seconds or when a
  test calls :meth:`flush_reports`.
- Replies (MO): :meth:`receive` posts ``{"results": [...]}`` to ``inbound_url`` with the HTTP
  Basic credentials the operator set in Infobip (``webhook_auth``).
- Errors as Infobip answers them: 401 with ``requestError.serviceException`` for a bad key,
  400 for a malformed request.

What a test controls: :meth:`fail_next` (answer the next calls with a status), :meth:`hang_next`
(take the messages, then answer too late: the client times out without knowing),
``slow`` (seconds before each call is handled), :meth:`reject` (a destination Infobip
refuses), ``final_status`` (per destination: how its report ends) and
``report_before_answer`` (the report leaves before the send's answer: it can reach Relais
before the send is recorded).

Webhooks go through ``post(url, content, headers)``, e.g. :meth:`AppServer.post`.
"""

import base64
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from core.delivery.sms import segments

API_KEY = "fake-infobip-api-key"

STATUSES = {
    "PENDING_ACCEPTED": (1, "PENDING", 26, "Message sent to next instance"),
    "DELIVERED_TO_HANDSET": (3, "DELIVERED", 5, "Message delivered to handset"),
    "UNDELIVERABLE_NOT_DELIVERED": (2, "UNDELIVERABLE", 9, "Message sent not delivered"),
    "EXPIRED_EXPIRED": (4, "EXPIRED", 15, "Message expired"),
    "REJECTED_DESTINATION": (5, "REJECTED", 52, "Invalid destination address."),
    "REJECTED_NOT_ENOUGH_CREDITS": (5, "REJECTED", 12, "Not enough credits"),
}
ERRORS = {
    "DELIVERED_TO_HANDSET": (0, "OK", 0, "NO_ERROR", "No Error", False),
    "UNDELIVERABLE_NOT_DELIVERED": (
        1,
        "HANDSET_ERRORS",
        27,
        "EC_ABSENT_SUBSCRIBER",
        "Absent Subscriber",
        False,
    ),
    "EXPIRED_EXPIRED": (
        1,
        "HANDSET_ERRORS",
        1,
        "EC_UNKNOWN_SUBSCRIBER",
        "Unknown Subscriber",
        True,
    ),
}


def status(name: str) -> dict:
    group_id, group, number, description = STATUSES[name]
    return {
        "groupId": group_id,
        "groupName": group,
        "id": number,
        "name": name,
        "description": description,
    }


def error(name: str) -> dict:
    group_id, group, number, code, description, permanent = ERRORS.get(
        name, (0, "OK", 0, "NO_ERROR", "No Error", False)
    )
    return {
        "groupId": group_id,
        "groupName": group,
        "id": number,
        "name": code,
        "description": description,
        "permanent": permanent,
    }


def infobip_time(at: datetime) -> str:
    """Infobip's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``, e.g. ``2026-05-04T10:00:00.000+0200``."""
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}{at:%z}"


@dataclass
class Sent:
    """A message Infobip took (or refused: ``status`` says which)."""

    message_id: str
    bulk_id: str
    to: str
    sender: str | None
    text: str
    delivery_url: str | None
    content_type: str
    callback_data: str | None
    sent_at: datetime
    status: dict
    done_at: datetime | None = None
    reported: bool = False


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict | None
    answered: int = 0


@dataclass
class Posted:
    url: str
    body: dict
    headers: dict[str, str]
    status: int


@dataclass
class _Script:
    fail: list[int] = field(default_factory=list)
    hang: list[tuple[float, bool]] = field(default_factory=list)


class FakeInfobip:
    def __init__(self, post, api_key: str = API_KEY, bucket_size: int = 100) -> None:
        self.post = post
        self.api_key = api_key
        self.bucket_size = bucket_size
        self.report_delay: float | None = None  # None: reports leave on flush_reports()
        self.report_before_answer = False
        self.slow = 0.0
        self.final_status: dict[str, str] = {}  # destination -> status name of its report
        self.rejected: dict[str, str] = {}  # destination -> REJECTED status name
        self.inbound_url: str | None = None
        self.webhook_auth: tuple[str, str] | None = None  # BASIC settings made in Infobip
        self.sent: list[Sent] = []
        self.calls: list[Call] = []
        self.posted: list[Posted] = []
        self._script = _Script()
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._timers: list[threading.Timer] = []

    def __enter__(self) -> "FakeInfobip":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for timer in self._timers:
            timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # --- what a test tells it ----------------------------------------------------------------

    def fail_next(self, count: int, status_code: int = 500) -> None:
        with self.lock:
            self._script.fail.extend([status_code] * count)

    def hang_next(self, count: int, seconds: float, taken: bool = True) -> None:
        """Hold the answers to the next ``count`` sends ``seconds``, having taken their
        messages (``taken``) or not (the request never got past Infobip's front door)."""
        with self.lock:
            self._script.hang.extend([(seconds, taken)] * count)

    def reject(self, to: str, name: str = "REJECTED_DESTINATION") -> None:
        self.rejected[to.removeprefix("+")] = name

    # --- what a test reads -------------------------------------------------------------------

    def accepted(self) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if s.status["groupName"] != "REJECTED"]

    def message_ids(self) -> list[str]:
        """Every message id Infobip took, in order, once per time it was sent."""
        return [s.message_id for s in self.accepted()]

    def duplicates(self) -> list[str]:
        return sorted(i for i, times in Counter(self.message_ids()).items() if times > 1)

    def sends(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == "POST"]

    # --- webhooks ----------------------------------------------------------------------------

    def flush_reports(self, done_at: datetime | None = None) -> list[int]:
        """Post the reports of every message not reported yet; the webhooks' HTTP statuses."""
        done_at = done_at or datetime.now(UTC)
        with self.lock:
            due = [s for s in self.sent if not s.reported and s.delivery_url]
            for sent in due:
                sent.reported = True
                if sent.status["groupName"] != "REJECTED":
                    sent.status = status(self.final_status.get(sent.to, "DELIVERED_TO_HANDSET"))
                sent.done_at = done_at
        by_url: dict[str, list[Sent]] = {}
        for sent in due:
            by_url.setdefault(sent.delivery_url, []).append(sent)
        answers = []
        for url, reports in by_url.items():
            for start in range(0, len(reports), self.bucket_size):
                bucket = reports[start : start + self.bucket_size]
                answers.append(self._post(url, {"results": [self._report(s) for s in bucket]}))
        return answers

    def replay(self) -> int:
        """Post the last webhook again, exactly (Infobip retries, networks repeat)."""
        last = self.posted[-1]
        return self._post(last.url, last.body, last.headers)

    def receive(self, sender: str, text: str, to: str = "33700000000") -> int:
        """A patient's reply to one of the operator's numbers, forwarded to ``inbound_url``."""
        return self._post(self.inbound_url, self.reply(sender, text, to))

    def reply(self, sender: str, text: str, to: str = "33700000000") -> dict:
        """The body Infobip forwards for a patient's reply (MO message)."""
        keyword, _, rest = text.strip().partition(" ")
        result = {
            "messageId": uuid.uuid4().hex,
            "from": sender.removeprefix("+"),
            "to": to,
            "text": text,
            "cleanText": rest,
            "keyword": keyword.upper(),
            "receivedAt": infobip_time(datetime.now(UTC)),
            "smsCount": segments(text)[1],
            "price": {"pricePerMessage": 0, "currency": "EUR"},
            "callbackData": None,
        }
        return {"results": [result], "messageCount": 1, "pendingMessageCount": 0}

    def report(self, message_id: str, status_name: str, done_at: datetime | None = None) -> dict:
        """The delivery report body Infobip would post for a message it took."""
        with self.lock:
            sent = next(s for s in reversed(self.sent) if s.message_id == message_id)
            sent.status, sent.done_at = status(status_name), done_at or datetime.now(UTC)
        return {"results": [self._report(sent)]}

    def _report(self, sent: Sent) -> dict:
        report = {
            "bulkId": sent.bulk_id,
            "messageId": sent.message_id,
            "to": sent.to,
            "sender": sent.sender,
            "sentAt": infobip_time(sent.sent_at),
            "doneAt": infobip_time(sent.done_at),
            "messageCount": segments(sent.text)[1],
            "price": {"pricePerMessage": 0.05, "currency": "EUR"},
            "status": sent.status,
            "error": error(sent.status["name"]),
        }
        if sent.callback_data is not None:
            report["callbackData"] = sent.callback_data
        return report

    def _post(self, url: str, body: dict, headers: dict | None = None) -> int:
        if headers is None:
            headers = {"Content-Type": "application/json", "User-Agent": "Infobip-fake"}
            if self.webhook_auth and url == self.inbound_url:
                pair = ":".join(self.webhook_auth).encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        answer = self.post(url, json.dumps(body).encode(), headers)
        with self.lock:
            self.posted.append(Posted(url, body, headers, answer.status_code))
        return answer.status_code

    # --- the API -----------------------------------------------------------------------------

    def _send(self, body) -> tuple[int, dict]:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return 400, _request_error("BAD_REQUEST", "messages: must not be empty")
        for message in messages:
            destinations = message.get("destinations") if isinstance(message, dict) else None
            text = (message.get("content") or {}).get("text") if destinations else None
            if not isinstance(destinations, list) or not destinations or not isinstance(text, str):
                return 400, _request_error("BAD_REQUEST", "destinations and content.text")
            if any(not str(d.get("to", "")).isdigit() for d in destinations):
                return 400, _request_error("BAD_REQUEST", "to: a number, digits only")
        bulk_id, now, answers = uuid.uuid4().hex, datetime.now(UTC), []
        for message in messages:
            webhooks = message.get("webhooks") or {}
            for destination in message["destinations"]:
                to = destination["to"]
                sent = Sent(
                    message_id=destination.get("messageId") or uuid.uuid4().hex,
                    bulk_id=bulk_id,
                    to=to,
                    sender=message.get("sender"),
                    text=message["content"]["text"],
                    delivery_url=(webhooks.get("delivery") or {}).get("url"),
                    content_type=webhooks.get("contentType", "application/json"),
                    callback_data=webhooks.get("callbackData"),
                    sent_at=now,
                    status=status(self.rejected.get(to, "PENDING_ACCEPTED")),
                )
                with self.lock:
                    self.sent.append(sent)
                answers.append(
                    {
                        "messageId": sent.message_id,
                        "status": sent.status,
                        "destination": to,
                        "details": {"messageCount": segments(sent.text)[1]},
                    }
                )
        if self.report_before_answer:
            self.flush_reports()
        elif self.report_delay is not None:
            timer = threading.Timer(self.report_delay, self.flush_reports)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        return 200, {"bulkId": bulk_id, "messages": answers}

    def _logs(self, query: dict[str, list[str]]) -> tuple[int, dict]:
        ids = set(query.get("messageId", []))
        since = query.get("sentSince", [None])[0]
        since_at = datetime.fromisoformat(since) if since else None
        limit = int(query.get("limit", ["50"])[0])
        with self.lock:
            found = [
                s
                for s in self.sent
                if (not ids or s.message_id in ids) and (since_at is None or s.sent_at >= since_at)
            ]
        results = [
            {
                "sender": s.sender,
                "destination": s.to,
                "bulkId": s.bulk_id,
                "messageId": s.message_id,
                "sentAt": infobip_time(s.sent_at),
                "doneAt": infobip_time(s.done_at or s.sent_at),
                "messageCount": segments(s.text)[1],
                "status": s.status,
                "error": error(s.status["name"]),
                "content": {"text": s.text},
            }
            for s in found[:limit]
        ]
        return 200, {"results": results}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive connections, as Infobip's API serves

            def do_POST(self):  # noqa: N802 - http.server's naming
                self._handle("POST")

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def _handle(self, method):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                call = Call(method, parts.path, parse_qs(parts.query), dict(self.headers), body)
                with fake.lock:
                    fake.calls.append(call)
                    failing = fake._script.fail.pop(0) if fake._script.fail else None
                time.sleep(fake.slow)
                if self.headers.get("Authorization") != f"App {fake.api_key}":
                    code, answer = 401, _request_error("UNAUTHORIZED", "Invalid login details")
                elif failing:
                    code, answer = failing, _request_error("GENERAL_ERROR", "Try again later")
                elif (method, parts.path) == ("POST", "/sms/3/messages"):
                    with fake.lock:
                        hang, taken = fake._script.hang.pop(0) if fake._script.hang else (0, True)
                    if taken:
                        code, answer = fake._send(body)
                    else:
                        code, answer = 504, _request_error("GATEWAY_TIMEOUT", "Timed out")
                    time.sleep(hang)  # answered too late: the client has given up
                elif (method, parts.path) == ("GET", "/sms/3/logs"):
                    code, answer = fake._logs(call.query)
                else:
                    code, answer = 404, _request_error("NOT_FOUND", "No such endpoint")
                call.answered = code
                data = json.dumps(answer).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        return Handler


def _request_error(code: str, text: str) -> dict:
    return {"requestError": {"serviceException": {"messageId": code, "text": text}}}
