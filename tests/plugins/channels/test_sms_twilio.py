"""sms_twilio: Twilio's Messages API through the real pipeline, against a faithful fake Twilio.

Messages go through the outbox and the worker's job function; the fake (tests/fakes/twilio.py)
answers as Twilio does and posts its status callbacks, signed with the official ``twilio``
package, to the app served on loopback (tests/fakes/app_server.py). Webhooks a test posts
itself are signed the same way. Waiting for a callback is a bounded poll, never a sleep.
"""

import re
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from core.clinic import settings
from core.clinic.models import Patient
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
from core.delivery.providers import ACCEPTED, CircuitBreaker, Outgoing, SignatureError
from core.errors import ValidationError
from core.testing import (
    ChannelContract,
    ContractSetup,
    FailureMapping,
    InboundContract,
    ReceiptContract,
)
from plugins.channels.outbox.plugin import OutboxDelivery
from plugins.channels.sms_twilio.plugin import TwilioSms, parse_sender, receipt_time
from plugins.channels.twilio_api import parse_account_sid, parse_auth_token, parse_base_url
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.twilio import FakeTwilio
from tests.fakes.twilio import status_callback as twilio_callback
from tests.plugins.channels import confirmations
from tests.worlds import client_for, make_clinic, make_patient, wait_until

PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.channels.sms_twilio.plugin",
    "tests.plugins.channels.confirmations",
)
SENDER = "+33939030101"  # the clinic's Twilio number (not a mobile: France refuses those)
PHONE = "+33612345678"  # the patient's mobile (make_patient's 06 12 34 56 78)
TEXT = "Votre rendez-vous du 3 juin à 9 h est confirmé. Répondez OUI."
RECEIPTS = "/webhooks/twilio_sms/receipts"
INBOUND = "/webhooks/twilio_sms/FR/inbound"
SID = re.compile(r"^SM[0-9a-f]{32}$")


@pytest.fixture
def twilio(fake_twilio, app_server):
    """The fake Twilio, posting its callbacks to the app under test once a test releases
    them (so that what a test asserts right after a send does not race them)."""
    fake_twilio.post = app_server.post
    fake_twilio.hold_callbacks()
    confirmations.calls.clear()
    return fake_twilio


@pytest.fixture(autouse=True)
def healthy_providers(monkeypatch):
    """Each test starts with closed circuits (the breaker is per process)."""
    monkeypatch.setattr(routing, "breaker", CircuitBreaker())


@pytest.fixture
def clinic(plugin_app, twilio):
    """A French clinic whose SMS go through Twilio (the fake), with its settings for FR."""
    tenant = make_clinic(
        plugin_app, "demo", "FR", plugins=("outbox", "sms_twilio", "confirmations")
    )
    configure(plugin_app, twilio)
    with plugin_app.app_context(), system_scope():
        db.session.add(
            ProviderRoute(country_code="FR", channel="sms", provider="twilio_sms", priority=1)
        )
        db.session.commit()
    return tenant


@pytest.fixture
def patient(plugin_app, clinic):
    return make_patient(plugin_app, clinic)


def configure(app, twilio, **overrides):
    values = {
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "sender": SENDER,
        "base_url": twilio.base_url,
        **overrides,
    }
    with app.app_context(), system_scope():
        settings.save("FR", "sms_twilio", values)
        db.session.commit()


# --- helpers -------------------------------------------------------------------------------


def send(app, tenant, patient, text=TEXT, channels=("sms",)) -> uuid.UUID:
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        message = outbox.send(tenant, who, "transactional", text, {}, list(channels))
        db.session.commit()
        return message.id


def run_job(app, tenant, *message_ids) -> int:
    with app.app_context(), tenant_scope(tenant.id):
        return dispatch.deliver([str(i) for i in message_ids])


def state(app, tenant, message_id) -> Message:
    with app.app_context(), tenant_scope(tenant.id):
        message = db.session.get(Message, (tenant.id, message_id))
        db.session.expunge(message)
        return message


def time_passes(app, tenant, message_id) -> None:
    """The backoff is over: the message is due again."""
    with app.app_context(), tenant_scope(tenant.id):
        db.session.get(Message, (tenant.id, message_id)).next_attempt_at = utcnow()
        db.session.commit()


def rows(app, tenant, *columns, order=None) -> list[tuple]:
    with app.app_context(), tenant_scope(tenant.id):
        query = sa.select(*columns)
        if order is not None:
            query = query.order_by(order)
        return [tuple(r) for r in db.session.execute(query).all()]


def history(app, tenant, message_id) -> list[str]:
    with app.app_context(), tenant_scope(tenant.id):
        return list(
            db.session.scalars(
                sa.select(MessageEvent.status)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.at)
            )
        )


def post_signed(app, subdomain, path, params, token, signed_url=None, signature=None):
    """POST a webhook as Twilio would, signed with the official library."""
    client = client_for(app, subdomain)
    url = signed_url or f"{client.base_url}{path}"
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return client.post(path, data=params, headers=headers)


def status_callback(sid, status="delivered", **options) -> dict[str, str]:
    """Twilio's status callback for ``sid`` of our sender and patient (the fake's builder)."""
    return twilio_callback("AC" + "0" * 32, sid, status, PHONE, sender=SENDER, **options)


def sent_message(app, clinic, patient, twilio) -> Message:
    """A message Twilio took, whose callbacks are held back (the carrier is slow)."""
    message_id = send(app, clinic, patient)
    run_job(app, clinic, message_id)
    message = state(app, clinic, message_id)
    assert message.status == MessageStatus.SENT
    return message


# --- sending -------------------------------------------------------------------------------


def test_a_message_reaches_twilio_with_its_sender_text_and_credentials(
    plugin_app, clinic, patient, twilio
):
    message_id = send(plugin_app, clinic, patient)
    assert run_job(plugin_app, clinic, message_id) == 1

    [request] = twilio.requests
    assert request["auth_ok"]  # HTTP Basic: account SID and auth token
    form = request["form"]
    assert (form["To"], form["From"], form["Body"]) == (PHONE, SENDER, TEXT)
    assert form["StatusCallback"].endswith("://demo.relais.test/webhooks/twilio_sms/receipts")
    message = state(plugin_app, clinic, message_id)
    assert message.status == MessageStatus.SENT and message.provider == "twilio_sms"
    assert SID.match(message.provider_ref) and message.provider_ref == twilio.messages[0].sid
    assert rows(plugin_app, clinic, Attempt.provider, Attempt.outcome) == [
        ("twilio_sms", "accepted")
    ]


def test_a_jobs_messages_go_to_twilio_side_by_side_not_one_after_another(
    plugin_app, clinic, patient, twilio
):
    """Twilio takes one message per request: a job's requests are in flight together."""
    twilio.latency = 0.4  # each request takes this long to be answered
    message_ids = [send(plugin_app, clinic, patient, f"{TEXT} ({n})") for n in range(8)]
    started = time.monotonic()
    assert run_job(plugin_app, clinic, *message_ids) == 8
    took = time.monotonic() - started

    assert took < 8 * 0.4 / 2, f"8 requests of 0.4 s took {took:.1f} s: sent one at a time"
    assert sorted(r["form"]["Body"] for r in twilio.requests) == sorted(
        f"{TEXT} ({n})" for n in range(8)
    )
    assert twilio.duplicates() == {}
    assert {state(plugin_app, clinic, i).status for i in message_ids} == {MessageStatus.SENT}


def test_a_messaging_service_sender_is_sent_as_such(plugin_app, clinic, patient, twilio):
    service = "MG" + "a" * 32
    configure(plugin_app, twilio, sender=service)
    run_job(plugin_app, clinic, send(plugin_app, clinic, patient))
    form = twilio.requests[0]["form"]
    assert form["MessagingServiceSid"] == service and "From" not in form


def test_texts_over_ten_segments_are_refused_before_twilio(plugin_app, clinic, patient, twilio):
    message_id = send(plugin_app, clinic, patient, text="ç" * 671)  # UCS-2: 11 segments
    run_job(plugin_app, clinic, message_id)
    assert twilio.requests == []
    assert state(plugin_app, clinic, message_id).status == MessageStatus.FAILED
    [(outcome, error)] = rows(plugin_app, clinic, Attempt.outcome, Attempt.error)
    assert outcome == "permanent" and "11 SMS segments (UCS-2)" in error


# --- receipts ------------------------------------------------------------------------------


def test_the_status_callback_marks_the_message_delivered_with_its_time(
    plugin_app, clinic, patient, twilio
):
    message = sent_message(plugin_app, clinic, patient, twilio)
    before = utcnow()
    twilio.release_callbacks()

    delivered = wait_until(lambda: (m := state(plugin_app, clinic, message.id)).delivered_at and m)
    assert delivered.status == MessageStatus.DELIVERED
    assert before <= delivered.delivered_at <= utcnow()
    callbacks = twilio.wait_for_callbacks(2)
    assert [(c.params["MessageStatus"], c.status) for c in callbacks] == [
        ("sent", 204),
        ("delivered", 204),
    ]
    assert history(plugin_app, clinic, message.id) == ["pending", "sent", "delivered"]


def test_a_failed_delivery_is_recorded_with_twilios_error(plugin_app, clinic, patient, twilio):
    twilio.outcome = ("undelivered", 30003)
    message_id = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, message_id)
    twilio.release_callbacks()
    message = wait_until(
        lambda: (
            (m := state(plugin_app, clinic, message_id)).status == MessageStatus.UNDELIVERED and m
        )
    )
    assert message.delivered_at is None
    details = rows(plugin_app, clinic, MessageEvent.status, MessageEvent.detail)
    assert ("undelivered", "Twilio error 30003: unreachable handset") in details


def test_a_late_receipt_keeps_the_carriers_time(plugin_app, clinic, patient, twilio):
    message = sent_message(plugin_app, clinic, patient, twilio)
    done = (utcnow() - timedelta(minutes=10)).replace(second=0, microsecond=0)
    params = status_callback(message.provider_ref, done=done)

    answer = post_signed(plugin_app, "demo", RECEIPTS, params, twilio.auth_token)

    assert answer.status_code == 204
    assert state(plugin_app, clinic, message.id).delivered_at == done


@pytest.mark.parametrize(
    "forgery",
    ["missing", "wrong token", "tampered status", "another address"],
)
def test_a_receipt_with_a_bad_signature_changes_nothing(
    plugin_app, clinic, patient, twilio, forgery
):
    message = sent_message(plugin_app, clinic, patient, twilio)
    params = status_callback(message.provider_ref)
    token, signed_url, signature = twilio.auth_token, None, None
    if forgery == "missing":
        signature = ""
    elif forgery == "wrong token":
        token = "f" * 32
    elif forgery == "tampered status":
        signature = RequestValidator(token).compute_signature(
            f"https://demo.relais.test{RECEIPTS}", {**params, "MessageStatus": "undelivered"}
        )
    else:
        signed_url = f"https://other.relais.test{RECEIPTS}"

    answer = post_signed(plugin_app, "demo", RECEIPTS, params, token, signed_url, signature)

    assert answer.status_code == 401
    assert state(plugin_app, clinic, message.id).status == MessageStatus.SENT
    assert rows(plugin_app, clinic, EarlyReceipt.id) == []
    assert history(plugin_app, clinic, message.id) == ["pending", "sent"]


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
def test_a_malformed_receipt_is_refused(plugin_app, clinic, patient, twilio, missing):
    message = sent_message(plugin_app, clinic, patient, twilio)
    params = status_callback(message.provider_ref)
    del params[missing], params[missing.replace("Message", "Sms")]

    answer = post_signed(plugin_app, "demo", RECEIPTS, params, twilio.auth_token)

    assert answer.status_code == 400
    assert state(plugin_app, clinic, message.id).status == MessageStatus.SENT


def test_the_same_receipt_twice_changes_nothing(plugin_app, clinic, patient, twilio):
    message = sent_message(plugin_app, clinic, patient, twilio)
    params = status_callback(message.provider_ref)

    first = post_signed(plugin_app, "demo", RECEIPTS, params, twilio.auth_token)
    after_first = state(plugin_app, clinic, message.id)
    events = history(plugin_app, clinic, message.id)
    second = post_signed(plugin_app, "demo", RECEIPTS, params, twilio.auth_token)

    assert (first.status_code, second.status_code) == (204, 204)
    after_second = state(plugin_app, clinic, message.id)
    assert after_second.status == MessageStatus.DELIVERED
    assert after_second.delivered_at == after_first.delivered_at
    assert history(plugin_app, clinic, message.id) == events == ["pending", "sent", "delivered"]


def test_a_receipt_before_the_send_is_recorded_is_applied_once_it_is(
    plugin_app, clinic, patient, twilio
):
    twilio.callbacks_before_answer = True  # Twilio reports before its answer reaches us
    message_id = send(plugin_app, clinic, patient)

    run_job(plugin_app, clinic, message_id)

    # The callbacks came while the message was still being sent: they were kept, then
    # applied when the send was recorded, with no wait.
    assert [(c.params["MessageStatus"], c.status) for c in twilio.callbacks] == [
        ("sent", 204),
        ("delivered", 204),
    ]
    message = state(plugin_app, clinic, message_id)
    assert message.status == MessageStatus.DELIVERED and message.delivered_at is not None
    assert rows(plugin_app, clinic, EarlyReceipt.id) == []
    assert history(plugin_app, clinic, message_id) == ["pending", "sent", "delivered"]


# --- replies -------------------------------------------------------------------------------


def reply(sid=None, text="OUI", sender=PHONE) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "Body": text,
        "From": sender,
        "FromCountry": "FR",
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid or "SM" + uuid.uuid4().hex,
        "SmsStatus": "received",
        "To": SENDER,
    }


def test_a_patients_oui_is_kept_and_handed_to_features(plugin_app, clinic, patient, twilio):
    sent_message(plugin_app, clinic, patient, twilio)  # the clinic wrote to them last
    params = reply()

    answer = post_signed(plugin_app, "hooks", INBOUND, params, twilio.auth_token)

    assert answer.status_code == 204
    assert confirmations.calls == [(patient.id, "sms", "OUI")]
    kept = rows(
        plugin_app,
        clinic,
        InboundMessage.sender,
        InboundMessage.patient_id,
        InboundMessage.text,
        InboundMessage.provider,
        InboundMessage.provider_ref,
        InboundMessage.handled_by,
    )
    assert kept == [
        (PHONE, patient.id, "OUI", "twilio_sms", params["MessageSid"], "appointment confirmed")
    ]


def test_a_replayed_signed_reply_is_kept_and_handled_once(plugin_app, clinic, patient, twilio):
    """Twilio retries a webhook it got no answer to, and a captured signed request can be
    posted again: the same MessageSid is one reply, kept once, handed to features once."""
    sent_message(plugin_app, clinic, patient, twilio)
    params = reply()

    answers = [post_signed(plugin_app, "hooks", INBOUND, params, twilio.auth_token) for _ in "123"]

    assert [a.status_code for a in answers] == [204, 204, 204]
    assert confirmations.calls == [(patient.id, "sms", "OUI")]
    assert rows(plugin_app, clinic, InboundMessage.provider_ref) == [(params["MessageSid"],)]


def test_a_reply_with_a_bad_signature_is_refused(plugin_app, clinic, patient, twilio):
    sent_message(plugin_app, clinic, patient, twilio)
    answer = post_signed(plugin_app, "hooks", INBOUND, reply(), "0" * 32)
    assert answer.status_code == 401
    assert rows(plugin_app, clinic, InboundMessage.id) == []
    assert confirmations.calls == []


def test_a_malformed_reply_is_refused(plugin_app, clinic, patient, twilio):
    params = reply()
    del params["From"]
    answer = post_signed(plugin_app, "hooks", INBOUND, params, twilio.auth_token)
    assert answer.status_code == 400


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(500, None), (503, None), (429, 20429), (400, 21611)])
def test_a_temporary_refusal_is_retried_then_sent(
    plugin_app, clinic, patient, twilio, status, code
):
    twilio.fail_next(1, status=status, code=code)
    message_id = send(plugin_app, clinic, patient)

    run_job(plugin_app, clinic, message_id)
    message = state(plugin_app, clinic, message_id)
    assert message.status == MessageStatus.PENDING and message.next_attempt_at > utcnow()

    time_passes(plugin_app, clinic, message_id)
    run_job(plugin_app, clinic, message_id)

    assert state(plugin_app, clinic, message_id).status == MessageStatus.SENT
    assert len(twilio.requests) == 2 and len(twilio.messages) == 1
    outcomes = rows(plugin_app, clinic, Attempt.outcome, Attempt.error, order=Attempt.at)
    assert [o for o, _ in outcomes] == ["temporary", "accepted"]
    assert f"Twilio HTTP {status}" in outcomes[0][1]


@pytest.mark.parametrize("code", [21211, 21614, 21610])
def test_a_number_twilio_cannot_reach_falls_back_to_voice(
    plugin_app, clinic, patient, twilio, code
):
    twilio.unreachable[PHONE] = code
    message_id = send(plugin_app, clinic, patient, channels=("sms", "voice"))

    run_job(plugin_app, clinic, message_id)

    message = state(plugin_app, clinic, message_id)
    assert (message.status, message.channel, message.provider) == (
        MessageStatus.SENT,
        "voice",
        "outbox_voice",
    )
    assert rows(plugin_app, clinic, OutboxDelivery.channel, OutboxDelivery.recipient) == [
        ("voice", PHONE)
    ]
    attempts = rows(plugin_app, clinic, Attempt.provider, Attempt.outcome, order=Attempt.at)
    assert attempts == [("twilio_sms", "unreachable"), ("outbox_voice", "accepted")]
    assert twilio.messages == []


def test_refused_credentials_fail_over_to_the_next_provider(plugin_app, clinic, patient, twilio):
    configure(plugin_app, twilio, auth_token="0" * 32)
    with plugin_app.app_context(), system_scope():
        db.session.add(
            ProviderRoute(country_code="FR", channel="sms", provider="outbox_sms", priority=2)
        )
        db.session.commit()
    message_id = send(plugin_app, clinic, patient)

    run_job(plugin_app, clinic, message_id)

    message = state(plugin_app, clinic, message_id)
    assert (message.status, message.provider) == (MessageStatus.SENT, "outbox_sms")
    [(outcome, error), _] = rows(
        plugin_app, clinic, Attempt.outcome, Attempt.error, order=Attempt.at
    )
    assert outcome == "permanent" and "20003" in error
    assert twilio.requests[0]["auth_ok"] is False and twilio.messages == []


def test_a_timeout_is_of_unknown_outcome_and_the_retry_sends_once(
    plugin_app, clinic, patient, twilio, monkeypatch
):
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.3)
    twilio.time_out_next(1, seconds=3, created=False)  # the request is lost on the way
    message_id = send(plugin_app, clinic, patient)

    run_job(plugin_app, clinic, message_id)

    assert state(plugin_app, clinic, message_id).status == MessageStatus.PENDING
    [(outcome, error)] = rows(plugin_app, clinic, Attempt.outcome, Attempt.error)
    assert outcome == "unknown" and "no answer from Twilio within 0.3 s" in error
    time_passes(plugin_app, clinic, message_id)
    run_job(plugin_app, clinic, message_id)
    assert state(plugin_app, clinic, message_id).status == MessageStatus.SENT
    assert len(twilio.messages) == 1 and twilio.duplicates() == {}


def test_a_lost_message_is_sent_even_when_twilio_holds_its_twin(
    plugin_app, clinic, patient, twilio, monkeypatch
):
    """Twilio's list matches by recipient and text: the same text sent to the same patient
    before must not answer for a message Twilio never got (a reference is one message's)."""
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.3)
    first = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, first)
    twilio.time_out_next(1, seconds=3, created=False)  # the twin's request is lost
    twin = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, twin)
    time_passes(plugin_app, clinic, twin)

    run_job(plugin_app, clinic, twin)

    assert len(twilio.messages) == 2  # sent for real, not taken for the first one
    refs = {state(plugin_app, clinic, m).provider_ref for m in (first, twin)}
    assert refs == {m.sid for m in twilio.messages}


def test_a_lost_answer_is_recovered_without_sending_twice(
    plugin_app, clinic, patient, twilio, monkeypatch
):
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.3)
    twilio.time_out_next(1, seconds=3, created=True)  # Twilio took it; its answer is lost
    message_id = send(plugin_app, clinic, patient)

    run_job(plugin_app, clinic, message_id)

    message = state(plugin_app, clinic, message_id)
    assert message.status == MessageStatus.SENT
    assert message.provider_ref == twilio.messages[0].sid
    assert len(twilio.requests) == 1 and twilio.duplicates() == {}


def test_a_slow_twilio_that_takes_it_after_the_timeout_gets_it_once(
    plugin_app, clinic, patient, twilio, monkeypatch
):
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.3)
    twilio.time_out_next(1, seconds=0.8, created="late")  # after the plugin gave up and looked
    message_id = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, message_id)
    assert state(plugin_app, clinic, message_id).status == MessageStatus.PENDING
    wait_until(lambda: twilio.messages)  # Twilio creates it meanwhile

    time_passes(plugin_app, clinic, message_id)
    run_job(plugin_app, clinic, message_id)

    assert state(plugin_app, clinic, message_id).status == MessageStatus.SENT
    assert twilio.duplicates() == {}


def test_a_call_of_a_dead_worker_is_looked_up_not_repeated(plugin_app, clinic, patient, twilio):
    message_id = send(plugin_app, clinic, patient)
    with plugin_app.app_context(), tenant_scope(clinic.id):  # a worker claims it, calls...
        [message] = dispatch.claim([message_id])
        message.calling, message.calling_since = "twilio_sms", utcnow()  # on record first
        db.session.commit()
        route = routing.routes(clinic, "sms")[0]
        outgoing = Outgoing(message_id, clinic.id, "sms", PHONE, TEXT, callback_url=None)
        [result] = routing.provider(clinic, route).try_send([outgoing], 5)
        message.lease_until = utcnow()  # ...and dies; its lease runs out
        db.session.commit()
    with plugin_app.app_context():
        assert sweeper.sweep()["reclaimed"] == 1

    run_job(plugin_app, clinic, message_id)

    message = state(plugin_app, clinic, message_id)
    assert (message.status, message.provider_ref) == (MessageStatus.SENT, result.provider_ref)
    assert len(twilio.requests) == 1 and twilio.duplicates() == {}


# --- the plugin's parts --------------------------------------------------------------------


def provider(twilio) -> TwilioSms:
    return TwilioSms(
        settings={
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "sender": SENDER,
            "base_url": twilio.base_url,
        }
    )


def test_lookup_finds_only_what_twilio_created_since(fake_twilio):
    twilio = fake_twilio
    twilio.hold_callbacks()  # still queued at Twilio: no date_sent yet
    twilio_sms = provider(twilio)
    mine = Outgoing(uuid.uuid4(), uuid.uuid4(), "sms", PHONE, "Votre code : 123456")
    other = Outgoing(uuid.uuid4(), uuid.uuid4(), "sms", PHONE, "Votre code : 654321")
    since = datetime.now(UTC)
    [sent] = twilio_sms.try_send([mine], 5)

    found = twilio_sms.lookup([mine, other], since, 5)

    assert found == [replace(sent, looked_up=True)] and sent.outcome == ACCEPTED
    assert twilio_sms.lookup([mine], since + timedelta(minutes=5), 5) == []


def test_the_signature_check_agrees_with_twilios_library(fake_twilio):
    twilio = fake_twilio
    twilio_sms = provider(twilio)
    params = status_callback("SM" + "1" * 32)
    body = urlencode(params).encode()
    signed = "https://demo.relais.test/webhooks/twilio_sms/receipts"
    good = {"X-Twilio-Signature": twilio.signature(signed, params)}

    twilio_sms.verify(signed, good, body, params)
    # TLS ended at a proxy: Flask sees plain HTTP on its own port.
    twilio_sms.verify("http://demo.relais.test:8000/webhooks/twilio_sms/receipts", good, body, {})
    with pytest.raises(SignatureError):
        twilio_sms.verify(signed, {"X-Twilio-Signature": good["X-Twilio-Signature"][1:]}, body, {})
    with pytest.raises(SignatureError):
        TwilioSms(settings={}).verify(signed, good, body, params)  # no auth token set


def test_a_receipts_time_is_its_arrival_unless_the_carrier_shows_it_came_late():
    now = datetime(2025, 6, 3, 9, 30, 40, tzinfo=UTC)
    assert receipt_time(None, now) == now
    assert receipt_time("2506030930", now) == now  # on time: arrival is more precise
    assert receipt_time("2506030915", now) == datetime(2025, 6, 3, 9, 15, tzinfo=UTC)
    assert receipt_time("2506031130", now) == now  # the carrier's local time (UTC+2)
    assert receipt_time("2506030430", now) == now  # not UTC either (UTC-5)
    assert receipt_time("garbage", now) == now


def test_settings_are_checked_with_a_sentence_for_the_operator(plugin_app):
    assert parse_account_sid(" AC" + "a1" * 16 + " ") == "AC" + "a1" * 16
    assert parse_auth_token("0123456789abcdef" * 2) == "0123456789abcdef" * 2
    assert parse_sender("+33 9 39 03 01 01") == SENDER
    assert parse_sender("36180") == "36180"  # a short code
    assert parse_sender("Clinique 12") == "Clinique 12"
    assert parse_sender("MG" + "b" * 32) == "MG" + "b" * 32
    assert parse_base_url("https://api.twilio.com/") == "https://api.twilio.com"
    assert parse_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with plugin_app.test_request_context():
        for parse, text in [
            (parse_account_sid, "SK" + "a" * 32),
            (parse_auth_token, "secret"),
            (parse_sender, "+33 1"),
            (parse_sender, "Clinique du Parc"),  # 16 characters: too long for a sender ID
            (parse_sender, "123456789012"),  # a sender ID needs a letter; no such short code
            (parse_base_url, "http://api.twilio.com"),  # credentials in clear: no
            (parse_base_url, "https://api.twilio.com/2010-04-01"),
        ]:
            with pytest.raises(ValueError, match=r"\w+ \w+"):
                parse(text)
        with system_scope(), pytest.raises(ValidationError) as refused:
            settings.save("FR", "sms_twilio", {"auth_token": "secret"})
        assert refused.value.field == "auth_token"


# --- the channel contract (core.testing) ---------------------------------------------------


class TestTwilioContract(ChannelContract, FailureMapping, ReceiptContract, InboundContract):
    """Twilio keeps no reference of ours: what the fake took is told by recipient and text,
    which the contract's messages never share."""

    @pytest.fixture
    def contract(self):
        with FakeTwilio() as fake:
            to, ours = PHONE, {}

            class Recorded(TwilioSms):  # remembers which of our messages each text was
                def try_send(self, batch, timeout):
                    ours.update({(o.to, o.text): str(o.message_id) for o in batch})
                    return super().try_send(batch, timeout)

            failures = {
                "temporary": lambda: fake.fail_next(1, 503, message="Service Unavailable"),
                "permanent": lambda: fake.fail_next(1, 401, 20003, "Authenticate"),
                "unreachable": lambda: fake.unreachable.update({to: 21614}),
                "timeout": lambda: fake.time_out_next(1, seconds=2, created=False),
            }

            def webhook(url, params):
                headers = {"X-Twilio-Signature": fake.signature(url, params)}
                return url, headers, urlencode(params).encode(), params

            def receipt(result, status):
                code = 30003 if status == "undelivered" else None
                params = status_callback(result.provider_ref, status, error_code=code)
                return webhook(f"https://demo.relais.test{RECEIPTS}", params)

            def inbound(sender, text):
                return webhook(f"https://hooks.relais.test{INBOUND}", reply(None, text, sender))

            def tamper(hook):
                url, headers, _, form = hook
                forged = {**form, "From": "+33699999999"}
                return url, headers, urlencode(forged).encode(), forged

            yield ContractSetup(
                provider=Recorded(
                    settings={
                        "account_sid": fake.account_sid,
                        "auth_token": fake.auth_token,
                        "sender": SENDER,
                        "base_url": fake.base_url,
                    }
                ),
                to=to,
                fail=lambda kind: failures[kind](),
                received=lambda: [ours[(m.to, m.body)] for m in fake.messages],
                receipt=receipt,
                inbound=inbound,
                tamper=tamper,
                timeout=0.5,
            )
            assert fake.duplicates() == {}
