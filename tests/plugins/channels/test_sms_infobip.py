"""Infobip SMS through the real pipeline, against a fake Infobip that speaks its published API.

The fake (tests/fakes/infobip.py) runs on loopback; the app runs on loopback too
(tests/fakes/app_server.py), so the fake's delivery reports and replies reach Relais over
HTTP at the public URLs Relais gave it, as Infobip's would. Messages leave through the worker's
job function (``dispatch.deliver``); every test checks that Infobip never got a message twice.
"""

import base64
import json
import math
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import time_machine
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    EmptyPoolError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from core.app import create_app
from core.clinic import settings
from core.clinic.models import Patient
from core.clinic.patients import create_patient
from core.db import db, utcnow
from core.delivery import dispatch, outbox, routing, sweeper
from core.delivery.models import (
    Attempt,
    EarlyReceipt,
    InboundMessage,
    Message,
    MessageEvent,
    MessageStatus,
)
from core.delivery.providers import CircuitBreaker, Outgoing, send_batch
from core.errors import ValidationError
from core.testing import (
    ChannelContract,
    ContractSetup,
    FailureMapping,
    InboundContract,
    ReceiptContract,
)
from plugins.channels import http_api
from plugins.channels.outbox.plugin import OutboxDelivery
from plugins.channels.sms_infobip.plugin import TOKEN_LIFETIME, InfobipSms, report_token
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.app_server import AppServer
from tests.fakes.infobip import API_KEY, FakeInfobip
from tests.fakes.twilio import FakeTwilio
from tests.plugins.channels import stop_words
from tests.worlds import SERVER, TEST_CONFIG, make_clinic, start_worker, wait_until

PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.channels.sms_infobip.plugin",
    "plugins.channels.sms_twilio.plugin",
    "plugins.regulations.fr.plugin",
    "tests.plugins.channels.stop_words",
)
SECRET = "a-webhook-secret-set-by-the-operator"
TEXT = "Votre rendez-vous du 4 mai est confirmé."
RECEIPTS = f"https://demo.{SERVER}/webhooks/infobip_sms/receipts"
INBOUND = f"https://hooks.{SERVER}/webhooks/infobip_sms/FR/inbound"


@pytest.fixture(scope="module")
def infobip_app(app):
    """One app for the test's jobs and for the server the fake posts its webhooks to."""
    application = create_app({**TEST_CONFIG, "PLUGINS": PLUGINS})
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def app_server(infobip_app):
    with AppServer(infobip_app) as server:
        yield server


@pytest.fixture
def infobip(app_server, request):
    with FakeInfobip(post=app_server.post) as fake:
        fake.inbound_url = INBOUND  # set on the number in Infobip by the operator...
        fake.webhook_auth = ("relais", SECRET)  # ...with BASIC authentication settings
        yield fake
    if not request.node.get_closest_marker("xfail"):  # a known gap says so itself
        assert fake.duplicates() == [], "Infobip got a message twice"


@pytest.fixture(autouse=True)
def fresh_breaker(monkeypatch):
    """Circuit breakers are per process: failures of one test must not open another's."""
    monkeypatch.setattr(routing, "breaker", CircuitBreaker())
    stop_words.handled.clear()


def configure(app, fake, **changes):
    with app.app_context(), system_scope():
        settings.save(
            "FR",
            "sms_infobip",
            {
                "api_key": API_KEY,
                "base_url": fake.url,
                "sender": "Relais",
                "webhook_secret": SECRET,
                **changes,
            },
        )
        db.session.commit()


def route(app, *providers):
    """The operator's SMS routes for France, by priority."""
    with app.app_context(), system_scope():
        for priority, name in enumerate(providers, start=1):
            db.session.add(
                ProviderRoute(country_code="FR", channel="sms", provider=name, priority=priority)
            )
        db.session.commit()


@pytest.fixture
def clinic(infobip_app, infobip):
    tenant = make_clinic(
        infobip_app, "demo", "FR", plugins=("fr", "outbox", "sms_infobip", "stop_words")
    )
    configure(infobip_app, infobip)
    route(infobip_app, "infobip_sms")  # outbox_sms exists too: only Infobip carries SMS
    return tenant


def patients(app, tenant, count: int, **data) -> list[Patient]:
    with app.app_context(), tenant_scope(tenant.id):
        made = [
            create_patient(
                tenant,
                {
                    "first_name": "Jeanne",
                    "last_name": f"Durand {n}",
                    "phone": f"06123{n:05d}",
                    "email": f"jeanne{n}@example.org",
                    **data,
                },
            )
            for n in range(count)
        ]
        db.session.commit()
        for patient in made:
            db.session.refresh(patient)
            db.session.expunge(patient)
        return made


def send(app, tenant, people, channels=("sms",), text=TEXT) -> list[uuid.UUID]:
    with app.app_context(), tenant_scope(tenant.id):
        ids = [
            outbox.send(
                tenant,
                db.session.get(Patient, (tenant.id, p.id)),
                "transactional",
                text,
                {},
                list(channels),
            ).id
            for p in people
        ]
        db.session.commit()
        return ids


def run_job(app, tenant, ids) -> int:
    with app.app_context(), tenant_scope(tenant.id):
        return dispatch.deliver([str(i) for i in ids])


def messages(app, tenant, ids) -> list[Message]:
    with app.app_context(), tenant_scope(tenant.id):
        found = {m.id: m for m in db.session.scalars(sa.select(Message).where(Message.id.in_(ids)))}
        db.session.expunge_all()
        return [found[i] for i in ids]


def attempts(app, tenant) -> list[tuple[str, str]]:
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(
            sa.select(Attempt.provider, Attempt.outcome).order_by(Attempt.at, Attempt.provider)
        ).all()


def event_count(app, tenant) -> int:
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.scalar(sa.select(sa.func.count()).select_from(MessageEvent))


def time_passes(app, tenant, ids) -> None:
    """The retry's backoff is over."""
    with app.app_context(), tenant_scope(tenant.id):
        db.session.execute(
            sa.update(Message).where(Message.id.in_(ids)).values(next_attempt_at=utcnow())
        )
        db.session.commit()


def basic(password: str, user: str = "relais") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def with_token(body: bytes, token: str) -> bytes:
    """A webhook body whose reports carry ``token`` as their callbackData."""
    data = json.loads(body)
    for result in data["results"]:
        result["callbackData"] = token
    return json.dumps(data).encode()


def report(message_id, group="DELIVERED", done_at="2026-05-04T10:00:00.000+0200") -> bytes:
    result = {
        "messageId": str(message_id),
        "to": "33612300000",
        "sentAt": "2026-05-04T09:59:58.000+0200",
        "doneAt": done_at,
        "status": {"groupId": 3, "groupName": group, "id": 5, "name": "DELIVERED_TO_HANDSET"},
        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR"},
    }
    return json.dumps({"results": [result]}).encode()


# --- the channel contract (core.testing) ------------------------------------------------------


class TestInfobipContract(ChannelContract, FailureMapping, ReceiptContract, InboundContract):
    @pytest.fixture
    def contract(self):
        with FakeInfobip(post=None) as fake:
            to = "+33612345678"
            failures = {
                "temporary": lambda: fake.fail_next(1, 503),
                "permanent": lambda: fake.fail_next(1, 401),
                "unreachable": lambda: fake.reject(to),
                "timeout": lambda: fake.hang_next(1, 1.0, taken=False),
            }
            statuses = {
                "delivered": "DELIVERED_TO_HANDSET",
                "undelivered": "UNDELIVERABLE_NOT_DELIVERED",
            }

            def receipt(result, state):
                body = fake.report(result.provider_ref, statuses[state])
                url = next(s.delivery_url for s in fake.sent if s.message_id == result.provider_ref)
                return url, {"Content-Type": "application/json"}, json.dumps(body).encode(), {}

            def inbound(sender, text):
                body = json.dumps(fake.reply(sender, text)).encode()
                return INBOUND, {"Content-Type": "application/json", **basic(SECRET)}, body, {}

            def tamper(webhook):
                url, headers, body, form = webhook
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
                data = json.loads(body)
                for result in data["results"]:
                    result.pop("callbackData", None)
                return url, headers, json.dumps(data).encode(), form

            yield ContractSetup(
                provider=InfobipSms(
                    settings={
                        "api_key": API_KEY,
                        "base_url": fake.url,
                        "sender": "Relais",
                        "webhook_secret": SECRET,
                    }
                ),
                to=to,
                fail=lambda kind: failures[kind](),
                received=fake.message_ids,
                receipt=receipt,
                inbound=inbound,
                tamper=tamper,
                timeout=0.5,
            )
            assert fake.duplicates() == []


# --- sending and delivery reports -------------------------------------------------------------


def test_a_batch_of_250_goes_in_three_calls_and_reports_mark_it_delivered(
    infobip_app, clinic, infobip
):
    people = patients(infobip_app, clinic, 250)
    ids = send(infobip_app, clinic, people)

    assert run_job(infobip_app, clinic, ids) == 250

    calls = infobip.sends()
    assert len(calls) == math.ceil(250 / InfobipSms.batch_size) == 3
    destinations = []
    for call in calls:
        assert call.path == "/sms/3/messages"
        assert call.headers["Authorization"] == f"App {API_KEY}"
        [message] = call.body["messages"]  # one text: one message object, many destinations
        assert message["sender"] == "Relais"
        assert message["content"] == {"text": TEXT}
        assert message["webhooks"]["contentType"] == "application/json"
        url = message["webhooks"]["delivery"]["url"]  # the clinic's, with no secret in it
        assert url.partition("//")[2] == f"demo.{SERVER}/webhooks/infobip_sms/receipts"
        assert message["webhooks"]["callbackData"].startswith("r1.")  # the report token
        destinations.append(message["destinations"])
    assert [len(d) for d in destinations] == [100, 100, 50]
    sent = [d for chunk in destinations for d in chunk]
    assert sorted(d["messageId"] for d in sent) == sorted(str(i) for i in ids)  # our ids
    assert {d["to"] for d in sent} == {p.phone.removeprefix("+") for p in people}  # no "+"
    assert all(
        m.status == MessageStatus.SENT and m.provider_ref == str(m.id)
        for m in messages(infobip_app, clinic, ids)
    )

    done_at = datetime(2026, 5, 4, 10, 0, 0, 123000, tzinfo=timezone(timedelta(hours=2)))
    assert infobip.flush_reports(done_at) == [204, 204, 204]  # buckets of at most 100
    assert [len(p.body["results"]) for p in infobip.posted] == [100, 100, 50]
    for message in messages(infobip_app, clinic, ids):
        assert message.status == MessageStatus.DELIVERED
        assert message.delivered_at == done_at  # Infobip's time, with its offset
        assert message.delivered_at.utcoffset() == timedelta(0)


def test_an_undeliverable_report_marks_the_message_undelivered(infobip_app, clinic, infobip):
    [patient] = patients(infobip_app, clinic, 1)
    infobip.final_status[patient.phone.removeprefix("+")] = "UNDELIVERABLE_NOT_DELIVERED"
    [message_id] = send(infobip_app, clinic, [patient])
    run_job(infobip_app, clinic, [message_id])

    assert infobip.flush_reports() == [204]
    [message] = messages(infobip_app, clinic, [message_id])
    assert message.status == MessageStatus.UNDELIVERED and message.delivered_at is None


def test_reports_leave_on_their_own_after_a_delay(infobip_app, clinic, infobip):
    infobip.report_delay = 0.2
    people = patients(infobip_app, clinic, 3)
    ids = send(infobip_app, clinic, people)
    run_job(infobip_app, clinic, ids)

    wait_until(lambda: infobip.posted)
    assert [p.status for p in infobip.posted] == [204]
    assert {m.status for m in messages(infobip_app, clinic, ids)} == {MessageStatus.DELIVERED}


def test_the_same_report_twice_changes_nothing(infobip_app, clinic, infobip):
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    run_job(infobip_app, clinic, [message_id])
    assert infobip.flush_reports() == [204]
    before = messages(infobip_app, clinic, [message_id])[0], event_count(infobip_app, clinic)

    assert infobip.replay() == 204

    after = messages(infobip_app, clinic, [message_id])[0], event_count(infobip_app, clinic)
    assert after[1] == before[1]
    assert (after[0].status, after[0].delivered_at) == (
        MessageStatus.DELIVERED,
        before[0].delivered_at,
    )


def test_a_report_that_comes_before_the_send_is_recorded_is_applied_once_it_is(
    infobip_app, clinic, infobip
):
    infobip.report_before_answer = True  # the report reaches Relais while the call runs
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))

    run_job(infobip_app, clinic, [message_id])

    assert [p.status for p in infobip.posted] == [204]  # taken, kept for later
    [message] = messages(infobip_app, clinic, [message_id])
    assert message.status == MessageStatus.DELIVERED
    with infobip_app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(EarlyReceipt)).all() == []  # applied, then dropped
        events = db.session.scalars(
            sa.select(MessageEvent.status).order_by(MessageEvent.at, MessageEvent.id)
        ).all()
    assert events[-2:] == ["sent", "delivered"]


# --- webhook authentication ---------------------------------------------------------------


def test_webhooks_without_the_operators_secret_are_refused_and_change_nothing(
    infobip_app, clinic, infobip, app_server
):
    [patient] = patients(infobip_app, clinic, 1)
    [message_id] = send(infobip_app, clinic, [patient])
    run_job(infobip_app, clinic, [message_id])
    real_url = infobip.sent[0].delivery_url
    events = event_count(infobip_app, clinic)
    body = report(message_id)
    forged = with_token(body, report_token("another-secret-entirely", real_url, utcnow()))
    elsewhere = real_url.replace("demo.", "other.")
    theirs = with_token(body, report_token(SECRET, elsewhere, utcnow()))  # another clinic's
    real_token = infobip.sent[0].callback_data

    refused = [
        app_server.post(RECEIPTS, body, {}),  # no credentials
        app_server.post(RECEIPTS, body, basic("a-wrong-password-of-some-length")),
        app_server.post(RECEIPTS, body, {"Authorization": "Basic not-base64!"}),
        app_server.post(RECEIPTS, body, {"Authorization": f"App {SECRET}"}),
        app_server.post(RECEIPTS, forged, {}),  # a token made with another secret
        app_server.post(RECEIPTS, theirs, {}),  # a token of another clinic's URL
        app_server.post(f"{RECEIPTS}?token={real_token}", body, {}),  # in the URL: not read
        app_server.post(INBOUND, b'{"results": []}', {}),
        app_server.post(INBOUND, b'{"results": []}', basic("a-wrong-password-of-some-length")),
        app_server.post(INBOUND, with_token(b'{"results": [{}]}', real_token), {}),
    ]

    assert [r.status_code for r in refused] == [401] * len(refused)
    [message] = messages(infobip_app, clinic, [message_id])
    assert message.status == MessageStatus.SENT and message.delivered_at is None
    assert event_count(infobip_app, clinic) == events
    with infobip_app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(InboundMessage)).all() == []
        assert db.session.scalars(sa.select(EarlyReceipt)).all() == []


def test_the_secret_rotates_the_old_one_kept_while_earlier_reports_come_in(
    infobip_app, clinic, infobip, app_server
):
    """Reports of messages sent before the rotation come with the old secret's token: taken
    while it is the previous secret, refused once the operator clears it."""
    people = patients(infobip_app, clinic, 2)
    first, second = send(infobip_app, clinic, people)
    run_job(infobip_app, clinic, [first])  # its token made with the old secret
    new = "a-new-webhook-secret-after-rotation"
    configure(infobip_app, infobip, webhook_secret=new, previous_webhook_secret=SECRET)
    run_job(infobip_app, clinic, [second])
    old_token, new_token = (s.callback_data for s in infobip.sent)
    url = infobip.sent[0].delivery_url
    assert old_token != new_token and report_token(new, url, utcnow())[:3] == new_token[:3]

    assert app_server.post(RECEIPTS, with_token(report(first), old_token), {}).status_code == 204
    assert app_server.post(INBOUND, b'{"results": []}', basic(SECRET)).status_code == 204
    # The rotation is over: a secret field cannot be emptied, the new secret goes in both.
    configure(infobip_app, infobip, webhook_secret=new, previous_webhook_secret=new)
    late = with_token(report(second), old_token)
    assert app_server.post(RECEIPTS, late, {}).status_code == 401
    assert app_server.post(INBOUND, b'{"results": []}', basic(SECRET)).status_code == 401
    assert app_server.post(RECEIPTS, with_token(report(second), new_token), {}).status_code == 204
    assert [m.status for m in messages(infobip_app, clinic, [first, second])] == [
        MessageStatus.DELIVERED,
        MessageStatus.DELIVERED,
    ]


def test_a_report_token_expires(infobip_app, clinic, infobip, app_server):
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    run_job(infobip_app, clinic, [message_id])
    body = with_token(report(message_id), infobip.sent[0].callback_data)

    with time_machine.travel(utcnow() + TOKEN_LIFETIME + timedelta(minutes=1)):
        assert app_server.post(RECEIPTS, body, {}).status_code == 401
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.SENT
    assert app_server.post(RECEIPTS, body, {}).status_code == 204


def test_without_a_secret_no_webhook_is_trusted_nor_asked_for(infobip_app, infobip, app_server):
    clinic = make_clinic(infobip_app, "demo", "FR", plugins=("fr", "sms_infobip"))
    with infobip_app.app_context(), system_scope():
        settings.save("FR", "sms_infobip", {"api_key": API_KEY, "base_url": infobip.url})
        db.session.commit()
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    run_job(infobip_app, clinic, [message_id])

    [call] = infobip.sends()
    assert "webhooks" not in call.body["messages"][0]  # reports would only be refused
    assert app_server.post(RECEIPTS, report(message_id), basic("")).status_code == 401
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.SENT


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"results": "none"}',
        b'{"results": ["a string"]}',
        b'{"results": [{"messageId": "x"}]}',
        b'{"results": [{"messageId": "x", "status": {"groupName": "DELIVERED"}}]}',
        b'{"results": [{"messageId": "x", "status": {"groupName": "DELIVERED"},'
        b' "doneAt": "yesterday"}]}',
        b'{"results": [{"messageId": "x", "status": {"groupName": "DELIVERED"},'
        b' "doneAt": "2026-05-04T10:00:00.000"}]}',
    ],
)
def test_a_malformed_report_is_a_400_and_changes_nothing(
    infobip_app, clinic, infobip, app_server, body
):
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    run_job(infobip_app, clinic, [message_id])

    assert app_server.post(RECEIPTS, body, basic(SECRET)).status_code == 400
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.SENT


def test_a_report_with_the_operators_basic_credentials_is_taken(
    infobip_app, clinic, infobip, app_server
):
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    run_job(infobip_app, clinic, [message_id])

    assert app_server.post(RECEIPTS, report(message_id), basic(SECRET)).status_code == 204
    [message] = messages(infobip_app, clinic, [message_id])
    assert message.status == MessageStatus.DELIVERED
    assert message.delivered_at == datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


# --- replies ----------------------------------------------------------------------------


def test_a_stop_reply_reaches_the_features_and_is_kept(infobip_app, clinic, infobip):
    [patient] = patients(infobip_app, clinic, 1)
    run_job(infobip_app, clinic, send(infobip_app, clinic, [patient]))

    assert infobip.receive(patient.phone, "STOP") == 204

    assert stop_words.handled == [("sms", "STOP")]
    with infobip_app.app_context(), tenant_scope(clinic.id):
        [reply] = db.session.scalars(sa.select(InboundMessage)).all()
    assert (reply.sender, reply.patient_id, reply.text) == (patient.phone, patient.id, "STOP")
    assert (reply.provider, reply.channel, reply.handled_by) == (
        "infobip_sms",
        "sms",
        "opted out of SMS",
    )


def test_a_replayed_reply_is_kept_and_handled_once(infobip_app, clinic, infobip):
    """Infobip retries a forward it got no answer to, and a captured request can be posted
    again: the same messageId is one reply, kept once, handed to features once."""
    [patient] = patients(infobip_app, clinic, 1)
    run_job(infobip_app, clinic, send(infobip_app, clinic, [patient]))

    assert infobip.receive(patient.phone, "STOP") == 204
    assert [infobip.replay(), infobip.replay()] == [204, 204]

    assert stop_words.handled == [("sms", "STOP")]
    with infobip_app.app_context(), tenant_scope(clinic.id):
        kept = db.session.scalars(sa.select(InboundMessage.provider_ref)).all()
    assert kept == [infobip.posted[0].body["results"][0]["messageId"]]


def test_a_malformed_reply_is_a_400(infobip_app, clinic, infobip, app_server):
    for body in (b"{", b'{"results": [{"to": "33700000000"}]}', b'{"results": [{"from": "1"}]}'):
        assert app_server.post(INBOUND, body, basic(SECRET)).status_code == 400


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("status_code", [500, 503, 429])
def test_a_server_error_or_throttling_is_retried(infobip_app, clinic, infobip, status_code):
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    infobip.fail_next(1, status_code)

    run_job(infobip_app, clinic, [message_id])
    [message] = messages(infobip_app, clinic, [message_id])
    assert message.status == MessageStatus.PENDING and message.next_attempt_at > utcnow()
    assert infobip.message_ids() == []

    time_passes(infobip_app, clinic, [message_id])
    run_job(infobip_app, clinic, [message_id])
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.SENT
    assert infobip.message_ids() == [str(message_id)]
    assert [o for _, o in attempts(infobip_app, clinic)] == ["temporary", "accepted"]


def test_a_rejected_destination_is_unreachable_and_falls_back_to_the_next_channel(
    infobip_app, clinic, infobip
):
    [patient] = patients(infobip_app, clinic, 1)
    infobip.reject(patient.phone)
    [message_id] = send(infobip_app, clinic, [patient], channels=("sms", "email"))

    run_job(infobip_app, clinic, [message_id])

    [message] = messages(infobip_app, clinic, [message_id])
    assert (message.status, message.channel, message.provider) == (
        MessageStatus.SENT,
        "email",
        "outbox_email",
    )
    assert set(attempts(infobip_app, clinic)) == {
        ("infobip_sms", "unreachable"),
        ("outbox_email", "accepted"),
    }
    assert infobip.message_ids() == []  # Infobip refused it: nothing was sent by SMS

    assert infobip.flush_reports() == [204]  # Infobip's report of its refusal, later...
    [message] = messages(infobip_app, clinic, [message_id])
    assert (message.status, message.provider) == (MessageStatus.SENT, "outbox_email")  # not its


def test_bad_credentials_are_permanent_and_fail_over(infobip_app, infobip):
    clinic = make_clinic(infobip_app, "demo", "FR", plugins=("fr", "outbox", "sms_infobip"))
    configure(infobip_app, infobip, api_key="a-revoked-api-key")
    route(infobip_app, "infobip_sms", "outbox_sms")
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))

    run_job(infobip_app, clinic, [message_id])  # no retry on Infobip: over to the next one

    [message] = messages(infobip_app, clinic, [message_id])
    assert (message.status, message.provider) == (MessageStatus.SENT, "outbox_sms")
    assert attempts(infobip_app, clinic) == [
        ("infobip_sms", "permanent"),
        ("outbox_sms", "accepted"),
    ]
    with infobip_app.app_context(), tenant_scope(clinic.id):
        error = db.session.scalar(sa.select(Attempt.error).where(Attempt.provider == "infobip_sms"))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxDelivery)) == 1
    assert "401" in error and "Invalid login details" in error


def test_settings_are_checked_before_they_are_stored(infobip_app):
    with infobip_app.app_context(), system_scope():
        for field, value in (
            ("base_url", "xyz.api.infobip.com"),
            ("sender", "A sender name far too long"),
            ("webhook_secret", "short"),
        ):
            with pytest.raises(ValidationError) as refused:
                settings.save("FR", "sms_infobip", {field: value})
            assert refused.value.field == field
        db.session.rollback()


def test_twilio_failing_is_retried_then_fails_over_to_infobip(infobip_app, infobip, app_server):
    clinic = make_clinic(infobip_app, "demo", "FR", plugins=("fr", "sms_twilio", "sms_infobip"))
    configure(infobip_app, infobip)
    route(infobip_app, "twilio_sms", "infobip_sms")  # the operator's order for French SMS
    with FakeTwilio(post=app_server.post) as twilio:
        with infobip_app.app_context(), system_scope():
            settings.save(
                "FR",
                "sms_twilio",
                {
                    "account_sid": twilio.account_sid,
                    "auth_token": twilio.auth_token,
                    "sender": "+33939030101",
                    "base_url": twilio.base_url,
                },
            )
            db.session.commit()
        twilio.fail_next(dispatch.MAX_TRIES, status=500)
        [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))

        for _ in range(dispatch.MAX_TRIES - 1):  # Twilio fails: retried later, on Twilio
            run_job(infobip_app, clinic, [message_id])
            [message] = messages(infobip_app, clinic, [message_id])
            assert message.status == MessageStatus.PENDING and message.next_attempt_at > utcnow()
            time_passes(infobip_app, clinic, [message_id])
        run_job(infobip_app, clinic, [message_id])  # Twilio's last chance: over to Infobip

        assert twilio.messages == []
    [message] = messages(infobip_app, clinic, [message_id])
    assert (message.status, message.provider) == (MessageStatus.SENT, "infobip_sms")
    assert attempts(infobip_app, clinic) == [("twilio_sms", "temporary")] * dispatch.MAX_TRIES + [
        ("infobip_sms", "accepted")
    ]
    assert infobip.message_ids() == [str(message_id)]
    assert infobip.flush_reports() == [204]
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.DELIVERED


# --- never twice --------------------------------------------------------------------------


def test_an_answer_lost_to_a_timeout_is_found_by_lookup_not_sent_twice(
    infobip_app, clinic, infobip, monkeypatch
):
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.5)
    infobip.hang_next(1, seconds=2.0)  # Infobip takes it, its answer comes too late
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))

    run_job(infobip_app, clinic, [message_id])
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.PENDING
    assert [o for _, o in attempts(infobip_app, clinic)] == ["unknown"]

    time_passes(infobip_app, clinic, [message_id])
    run_job(infobip_app, clinic, [message_id])  # the retry looks it up first

    assert [(c.method, c.path) for c in infobip.calls] == [
        ("POST", "/sms/3/messages"),
        ("GET", "/sms/3/logs"),
    ]
    assert infobip.calls[1].query["messageId"] == [str(message_id)]
    [message] = messages(infobip_app, clinic, [message_id])
    assert (message.status, message.provider_ref) == (MessageStatus.SENT, str(message_id))
    assert [o for _, o in attempts(infobip_app, clinic)] == ["recovered"]
    assert infobip.message_ids() == [str(message_id)]


def test_infobip_out_of_reach_is_retried(infobip_app, clinic, infobip):
    configure(infobip_app, infobip, base_url="http://127.0.0.1:9")  # nothing listens there
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    run_job(infobip_app, clinic, [message_id])
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.PENDING
    assert [o for _, o in attempts(infobip_app, clinic)] == ["temporary"]

    configure(infobip_app, infobip)  # back in reach
    time_passes(infobip_app, clinic, [message_id])
    run_job(infobip_app, clinic, [message_id])
    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.SENT
    assert infobip.message_ids() == [str(message_id)]


@pytest.mark.parametrize(
    ("failure", "unknown"),
    [
        (NewConnectionError(None, "connection refused"), False),
        (ConnectTimeoutError(None, "connect timed out"), False),
        (EmptyPoolError(None, "no connection free"), False),
        (ClosedPoolError(None, "pool closed"), False),
        (ReadTimeoutError(None, "/sms/3/messages", "read timed out"), True),
        (ProtocolError("Connection aborted.", ConnectionResetError()), True),
    ],
)
def test_a_call_that_never_left_is_sent_again_one_that_may_have_is_looked_up_first(
    monkeypatch, failure, unknown
):
    """What urllib3 raises decides: a request that never reached Infobip is a plain
    temporary failure; one that may have reached it is of unknown outcome (looked up before
    any retry, never sent twice)."""

    def fails(*args, **kwargs):
        raise failure

    monkeypatch.setattr(http_api, "request", fails)
    infobip = InfobipSms(settings={"api_key": API_KEY, "base_url": "https://x.infobip.test"})
    message = Outgoing(uuid.uuid4(), uuid.uuid4(), "sms", "+33612345678", "Bonjour")

    [result], _latency = send_batch(infobip, [message], 1.0)

    assert (result.outcome, result.unknown) == ("temporary", unknown)


def test_a_slow_infobip_that_takes_it_after_the_timeout_gets_it_once(
    infobip_app, clinic, infobip, monkeypatch
):
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.5)
    infobip.slow = 1.0  # it reads the request, then takes it after Relais gave up (and looked)
    [message_id] = send(infobip_app, clinic, patients(infobip_app, clinic, 1))
    run_job(infobip_app, clinic, [message_id])
    wait_until(lambda: infobip.message_ids())  # Infobip takes it meanwhile
    infobip.slow = 0.0

    time_passes(infobip_app, clinic, [message_id])
    run_job(infobip_app, clinic, [message_id])

    assert messages(infobip_app, clinic, [message_id])[0].status == MessageStatus.SENT
    assert infobip.message_ids() == [str(message_id)]


def worker(*args) -> subprocess.Popen:
    return start_worker(PLUGINS, *args)


def test_a_worker_killed_during_the_call_is_recovered_by_lookup_not_sent_twice(
    infobip_app, clinic, infobip
):
    people = patients(infobip_app, clinic, 3)
    ids = send(infobip_app, clinic, people)  # one job, one call to Infobip
    infobip.hang_next(1, seconds=30.0)  # Infobip takes them, the worker waits for the answer

    running = worker("--burst")
    deadline = time.monotonic() + 30
    while len(infobip.message_ids()) < 3:
        assert time.monotonic() < deadline and running.poll() is None, running.stdout
        time.sleep(0.05)
    running.send_signal(signal.SIGKILL)  # it dies before it learns Infobip took them
    running.communicate(timeout=10)

    assert {m.status for m in messages(infobip_app, clinic, ids)} == {MessageStatus.SENDING}
    with infobip_app.app_context():
        with system_scope():  # a minute later, the dead worker's lease is over
            db.session.execute(sa.update(Message).values(lease_until=utcnow()))
            db.session.commit()
        assert sweeper.sweep()["reclaimed"] == 3
    run_job(infobip_app, clinic, ids)

    assert {m.status for m in messages(infobip_app, clinic, ids)} == {MessageStatus.SENT}
    assert sorted(infobip.message_ids()) == sorted(str(i) for i in ids)  # each once
    assert [c.method for c in infobip.calls] == ["POST", "GET"]  # looked up, not resent
    assert {o for _, o in attempts(infobip_app, clinic)} == {"recovered"}
