"""A fake Twilio Programmable Voice on loopback: the Calls API, as tests/fakes/twilio.py fakes
the Messages API (whose server, failure injection and signed callbacks it reuses).

It serves ``POST`` and ``GET /2010-04-01/Accounts/{AccountSid}/Calls.json``: HTTP Basic
authentication; form-encoded creates with ``To``, ``From`` (a number of the account:
:attr:`FakeTwilioVoice.caller`, else error 21210), the TwiML inline in ``Twiml`` (a
well-formed ``<Response>`` of at most 4,000 characters), ``Timeout``, ``StatusCallback`` and
``StatusCallbackEvent`` repeated once per event; JSON answers shaped like Twilio's Call
resource (``CA`` + 32 hex sids, ``queued`` at first, ``start_time`` empty until dialled); the
list's ``To``, ``From``, ``Status`` and ``StartTime``/``StartTime>``/``StartTime<`` filters,
most recent first.

Each call then plays out as :attr:`FakeTwilioVoice.outcomes` says for its number (by default
answered, lasting :attr:`answered_for` seconds): Twilio's call statuses in order, one status
callback per event the create asked for (``completed`` always, carrying the final status:
``completed`` with ``CallDuration``, ``no-answer``, ``busy`` or ``failed``), each with
``CallbackSource``, ``SequenceNumber`` and an RFC 2822 ``Timestamp``, signed with
``X-Twilio-Signature`` by the official ``twilio`` package and posted through ``post``
(``AppServer.post``). Failures are injected as for messages: :meth:`fail_next`,
:meth:`time_out_next`, :attr:`unreachable`.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import ClassVar
from xml.etree import ElementTree as ET

from tests.fakes.twilio import _E164, API, FakeTwilio, _date, _error, _rfc2822

ANSWERED, NO_ANSWER, BUSY, FAILED = "answered", "no-answer", "busy", "failed"
# (event, call status) in the order Twilio goes through them, per outcome; the ``completed``
# event carries the final status.
PROGRESS = {
    ANSWERED: [
        ("initiated", "initiated"),
        ("ringing", "ringing"),
        ("answered", "in-progress"),
        ("completed", "completed"),
    ],
    NO_ANSWER: [("initiated", "initiated"), ("ringing", "ringing"), ("completed", "no-answer")],
    BUSY: [("initiated", "initiated"), ("completed", "busy")],
    FAILED: [("initiated", "initiated"), ("completed", "failed")],
}
SIP = {"completed": "200", "no-answer": "487", "busy": "486", "failed": "404"}


@dataclass
class FakeCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    twiml: str
    timeout: int
    status_callback: str | None
    events: tuple[str, ...]
    outcome: tuple[str, int]
    date_created: datetime
    status: str = "queued"
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    sequence: int = 0

    def resource(self) -> dict:
        """The Call resource as Twilio's API returns it."""
        uri = f"{API}{self.account_sid}/Calls/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": _rfc2822(self.date_created),
            "date_updated": _rfc2822(self.end_time or self.start_time or self.date_created),
            "direction": "outbound-api",
            "duration": str(self.duration) if self.duration is not None else None,
            "end_time": _rfc2822(self.end_time),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": self.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + "0" * 32,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": _rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": {"recordings": f"{uri}/Recordings.json"},
            "to": self.to,
            "to_formatted": self.to,
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }

    def steps(self) -> list[tuple[str, str]]:
        """What the call does, in order: ("Say", its text) or ("Pause", its length)."""
        return [
            (verb.tag, verb.text if verb.tag == "Say" else verb.get("length", "1"))
            for verb in ET.fromstring(self.twiml)  # noqa: S314 - our own TwiML, in a test
        ]

    def says(self) -> list[str]:
        """The texts of its ``<Say>`` verbs, in order."""
        return [text for verb, text in self.steps() if verb == "Say"]


@dataclass
class FakeTwilioVoice(FakeTwilio):
    """A loopback Twilio Calls API; use as a context manager, like :class:`FakeTwilio`."""

    resource: ClassVar[str] = "Calls.json"
    caller: str = "+33644630101"  # the account's voice-capable number
    answered_for: int = 9  # seconds an answered call lasts, unless ``outcomes`` says otherwise
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)  # To -> (outcome, s)

    @property
    def calls(self) -> list[FakeCall]:
        return self.messages

    def calls_to(self, to: str) -> list[FakeCall]:
        return [c for c in self.calls if c.to == to]

    def duplicates(self) -> dict[tuple[str, str], int]:
        """(To, TwiML) pairs Twilio was asked to call more than once."""
        seen: dict[tuple[str, str], int] = {}
        for call in self.calls:
            seen[(call.to, call.twiml)] = seen.get((call.to, call.twiml), 0) + 1
        return {key: n for key, n in seen.items() if n > 1}

    # --- the API -----------------------------------------------------------------------------

    def _form(self, pairs: list[tuple[str, str]]) -> dict:
        form: dict = dict(pairs)
        form["StatusCallbackEvent"] = [v for k, v in pairs if k == "StatusCallbackEvent"]
        return form

    def _take(self, account: str, form: dict) -> tuple[int, dict]:
        to, sender, twiml = form.get("To", ""), form.get("From"), form.get("Twiml")
        if not to:
            return 400, _error(21201, "No 'To' number is specified", 400)
        if not sender:
            return 400, _error(21213, "'From' phone number is required", 400)
        if not twiml and not form.get("Url"):
            return 400, _error(21205, "Url parameter is required.", 400)
        if not twiml:
            return 400, _error(21205, "This fake reads inline Twiml only.", 400)
        if len(twiml) > 4000:
            return 400, _error(21205, "Twiml exceeds the 4000 character limit.", 400)
        try:
            root = ET.fromstring(twiml)  # noqa: S314 - the app's own TwiML, in a test
        except ET.ParseError:
            root = None
        if root is None or root.tag != "Response":
            return 400, _error(12100, "Document parse failure", 400)
        if not _E164.match(to):
            return 400, _error(21211, f"The 'To' number {to} is not a valid phone number.", 400)
        if to in self.unreachable:
            return 400, _error(self.unreachable[to], f"The number {to} cannot be called.", 400)
        if sender != self.caller:
            message = f"The source phone number provided, {sender}, is not yet verified."
            return 400, _error(21210, message, 400)
        call = FakeCall(
            sid="CA" + uuid.uuid4().hex,
            account_sid=account,
            to=to,
            from_=sender,
            twiml=twiml,
            timeout=int(form.get("Timeout") or 60),
            status_callback=form.get("StatusCallback"),
            events=tuple(form["StatusCallbackEvent"]) or ("completed",),
            outcome=self.outcomes.get(to, (ANSWERED, self.answered_for)),
            date_created=datetime.now(UTC),
        )
        with self._lock:
            self.messages.append(call)
        self._schedule(call, [status for _, status in PROGRESS[call.outcome[0]]])
        return 201, call.resource()

    def _list(self, account: str, query: dict[str, list[str]], auth_ok: bool) -> tuple[int, dict]:
        if not auth_ok or account != self.account_sid:
            return 401, _error(20003, "Authenticate", 401)
        found = list(self.calls)
        for name, attribute in (("To", "to"), ("From", "from_"), ("Status", "status")):
            if name in query:
                found = [c for c in found if getattr(c, attribute) == query[name][0]]
        for name, keep in (
            ("StartTime", lambda start, day: start.date() == day.date()),
            ("StartTime>", lambda start, day: start >= day),
            ("StartTime<", lambda start, day: start <= day),
        ):
            if name in query:  # a filter on start_time leaves out calls not dialled yet
                day = _date(query[name][0])
                found = [c for c in found if c.start_time and keep(c.start_time, day)]
        found.sort(key=lambda c: c.date_created, reverse=True)  # most recent first
        size = min(int(query.get("PageSize", ["50"])[0]), 1000)
        page = int(query.get("Page", ["0"])[0])
        chunk = found[page * size : (page + 1) * size]
        uri = f"{API}{account}/Calls.json"
        more = len(found) > (page + 1) * size
        return 200, {
            "calls": [c.resource() for c in chunk],
            "end": page * size + max(len(chunk) - 1, 0),
            "first_page_uri": f"{uri}?PageSize={size}&Page=0",
            "next_page_uri": f"{uri}?PageSize={size}&Page={page + 1}" if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": f"{uri}?PageSize={size}&Page={page - 1}" if page else None,
            "start": page * size,
            "uri": f"{uri}?PageSize={size}&Page={page}",
        }

    # --- status callbacks --------------------------------------------------------------------

    def _advance(self, call: FakeCall, status: str) -> None:
        """Move a call to ``status``; post its callback if the create asked for that event."""
        now = datetime.now(UTC)
        call.status = status
        event = next(e for e, s in PROGRESS[call.outcome[0]] if s == status)
        if status == "initiated":
            call.start_time = now
        final = event == "completed"
        if final:
            call.end_time = now
            call.duration = call.outcome[1] if status == "completed" else 0
        if not call.status_callback or event not in call.events:
            return
        call.sequence += 1
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "CallbackSource": "call-progress-events",
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "SequenceNumber": str(call.sequence - 1),
            "Timestamp": format_datetime(now),
            "To": call.to,
        }
        if final:
            params["SipResponseCode"] = SIP[status]
            if status == "completed":
                params["CallDuration"] = str(call.duration)
        self.callbacks.append(self._post(call.status_callback, params))
