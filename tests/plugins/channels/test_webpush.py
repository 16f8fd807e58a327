"""Web Push through the real pipeline, against a push service that checks what real ones do.

The fake (tests/fakes/push_service.py) verifies each request's VAPID signature and decrypts
its payload with the keys only the test's "phone" has: tests assert the text the phone would
show. The app runs on loopback (tests/fakes/app_server.py), so the service worker's
acknowledgement reaches Relais over HTTP at the URL the payload gave it, as a phone's would.
Patients come in through the access link staff send them (core.delivery.access_links).
"""

import base64
import json
import re
import signal
import subprocess
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext
from itsdangerous.timed import TimestampSigner
from markupsafe import escape

from core.clinic import settings
from core.clinic.models import Patient
from core.db import db
from core.delivery import dispatch, outbox, routing, sweeper
from core.delivery.models import Attempt, Message, MessageEvent, MessageStatus
from core.delivery.providers import CircuitBreaker
from core.plugins import hooks_for
from core.testing import ChannelContract, ContractSetup, FailureMapping, ReceiptContract
from plugins.channels.outbox.plugin import OutboxDelivery
from plugins.channels.webpush import subscriptions
from plugins.channels.webpush.provider import WebPush, ack_token, generate_keys
from plugins.channels.webpush.subscriptions import PushSubscription
from tenants.models import DeploymentSettings, Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.push_service import FakePushService, unb64
from tests.worlds import (
    SERVER,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
    start_worker,
    wait_until,
)

PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.channels.webpush.plugin",
    "plugins.regulations.fr.plugin",
)
ENABLED = ("fr", "outbox", "webpush")
CONTACT = "mailto:operations@relais.example"
TEXT = "Votre rendez-vous du 4 mai à 9 h est confirmé. Répondez OUI pour le garder."
CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture
def push():
    with FakePushService() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh_breaker(monkeypatch):
    monkeypatch.setattr(routing, "breaker", CircuitBreaker())


def vapid_keys(app) -> str:
    """The deployment's keys, made as an operator makes them; the public key."""
    result = app.test_cli_runner().invoke(args=["webpush", "keys"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def configure(app, push, **changes):
    with app.app_context(), system_scope():
        settings.save(
            "FR", "webpush", {"contact": CONTACT, "push_services": push.origin, **changes}
        )
        db.session.commit()


@pytest.fixture
def clinic(plugin_app, push):
    tenant = make_clinic(plugin_app, "demo", "FR", plugins=ENABLED)
    configure(plugin_app, push)
    return tenant


@pytest.fixture
def public_key(plugin_app, clinic):
    return vapid_keys(plugin_app)


def subscribe(app, tenant, patient, device) -> None:
    """A device the patient turned notifications on in (as the page's POST does)."""
    with app.app_context(), tenant_scope(tenant.id):
        services = [device.endpoint.rsplit("/push/", 1)[0]]
        subscriptions.subscribe(patient, device.info(), CHROME, services)
        db.session.commit()


def send(app, tenant, patient, channels=("push", "sms"), text=TEXT, **kwargs):
    with app.app_context(), tenant_scope(tenant.id):
        recipient = db.session.get(Patient, (tenant.id, patient.id))
        row = outbox.send(tenant, recipient, "transactional", text, {}, channels, **kwargs)
        db.session.commit()
        return row.id


def run_job(app, tenant, message_id) -> int:
    with app.app_context(), tenant_scope(tenant.id):
        return dispatch.deliver([str(message_id)])


def message(app, tenant, message_id) -> Message:
    with app.app_context(), tenant_scope(tenant.id):
        row = db.session.get(Message, (tenant.id, message_id))
        db.session.expunge(row)
        return row


def events(app, tenant, message_id) -> list[tuple[str, str | None]]:
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(
            sa.select(MessageEvent.status, MessageEvent.detail)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.at, MessageEvent.id)
        ).all()


def attempts(app, tenant, message_id) -> list[tuple[str, str]]:
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(
            sa.select(Attempt.provider, Attempt.outcome)
            .where(Attempt.message_id == message_id)
            .order_by(Attempt.at)
        ).all()


def sms(app, tenant) -> list[tuple[str, str]]:
    """What the patient received by SMS (the outbox channel plugin's SMS provider)."""
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(
            sa.select(OutboxDelivery.recipient, OutboxDelivery.text)
            .where(OutboxDelivery.channel == "sms")
            .order_by(OutboxDelivery.at)
        ).all()


def devices(app, tenant) -> list[str]:
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.scalars(sa.select(PushSubscription.endpoint)).all()


def minutes_pass(app, tenant, message_id, minutes: int) -> None:
    """``minutes`` pass after the message was sent."""
    with app.app_context(), tenant_scope(tenant.id):
        row = db.session.get(Message, (tenant.id, message_id))
        row.sent_at = row.sent_at - timedelta(minutes=minutes)
        db.session.commit()


def acknowledge(app_server, payload: dict, token: str | None = None, url: str | None = None):
    """What the service worker posts once it showed the notification."""
    body = {"message_id": payload["message_id"], "token": token or payload["token"]}
    return app_server.post(
        url or payload["ack"],
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )


@pytest.fixture
def worker():
    """A real ``relais worker`` (with its sweeper) on the test database and Redis."""
    running = start_worker(PLUGINS)
    yield running
    running.send_signal(signal.SIGTERM)
    try:
        running.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        running.kill()
        running.communicate()


def patient_session(app, tenant, patient) -> HostClient:
    """A patient's browser, in through the access link staff sent them (read from the SMS)."""
    staff = client_for(app, tenant.slug)
    log_in(staff, make_staff(app, tenant, "secretary", email=f"s{time.monotonic_ns()}@x.example"))
    path = f"/patients/{patient.id}"
    sent = staff.post(f"{path}/access-link", data={"csrf_token": csrf_token(staff, path)})
    assert sent.status_code == 303
    with app.app_context(), tenant_scope(tenant.id):
        [link_id] = db.session.scalars(
            sa.select(Message.id)
            .where(Message.patient_id == patient.id)
            .order_by(Message.created_at.desc())
            .limit(1)
        ).all()
        dispatch.deliver([str(link_id)])  # unless a running worker took it first
    wait_until(lambda: sms(app, tenant))
    text = sms(app, tenant)[-1][1]
    link = re.search(r"https://\S+/me/access/\S+", text).group(0)
    browser = client_for(app, tenant.slug)
    path = link.partition(SERVER)[2]
    page = browser.post(path, data={"csrf_token": csrf_token(browser, path)})
    assert page.status_code == 302 and page.headers["Location"].endswith("/me/")
    return browser


def page_csrf(client: HostClient, path: str) -> str:
    match = re.search(r'data-csrf="([^"]+)"', client.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


# --- the channel contract (core.testing) ------------------------------------------------------


class TestWebPushContract(ChannelContract, FailureMapping, ReceiptContract):
    @pytest.fixture
    def contract(self, plugin_app):
        clinic = make_clinic(plugin_app, "demo", "FR", plugins=ENABLED)
        patient = make_patient(plugin_app, clinic)
        private, public = generate_keys()
        with FakePushService() as fake, plugin_app.app_context(), tenant_scope(clinic.id):
            device = fake.device(server_key=public)
            subscriptions.subscribe(patient, device.info(), CHROME, [fake.origin])
            db.session.commit()
            failures = {
                "temporary": lambda: fake.fail_next(503),
                "permanent": lambda: fake.fail_next(403),
                "unreachable": lambda: fake.gone(device),
                "timeout": lambda: fake.hang_next(1.5),
            }

            def receipt(result, status):
                payload = next(
                    p for p in fake.payloads() if p["message_id"] == str(result.message_id)
                )
                body = {"message_id": payload["message_id"], "token": payload["token"]}
                body["status"] = status
                headers = {"Content-Type": "application/json"}
                return payload["ack"], headers, json.dumps(body).encode(), {}

            def tamper(webhook):
                url, headers, body, form = webhook
                forged = {**json.loads(body), "token": "0" * 64}
                return url, headers, json.dumps(forged).encode(), form

            yield ContractSetup(
                provider=WebPush(
                    settings={
                        "vapid_private_key": private,
                        "vapid_public_key": public,
                        "contact": CONTACT,
                        "ttl": 60,
                    }
                ),
                to=subscriptions.address(patient),
                fail=lambda kind: failures[kind](),
                received=fake.references,
                receipt=receipt,
                tamper=tamper,
                timeout=0.5,
                tenant_id=clinic.id,
            )
            db.session.rollback()


# --- VAPID keys -------------------------------------------------------------------------------


def test_vapid_keys_are_made_once_stored_encrypted_and_only_the_public_key_is_shown(
    plugin_app, clinic, push
):
    runner = plugin_app.test_cli_runner()
    made = runner.invoke(args=["webpush", "keys"])
    assert made.exit_code == 0, made.output
    public = made.output.strip()
    point = unb64(public)
    assert len(point) == 65 and point[0] == 4  # an uncompressed P-256 point: the browser's key
    with plugin_app.app_context(), system_scope():
        stored = settings.deployment("webpush")
        sealed = db.session.scalar(sa.select(DeploymentSettings.sealed))
    private = stored["vapid_private_key"]
    assert stored["vapid_public_key"] == public
    assert len(unb64(private)) == 32
    assert private not in made.output
    assert private not in sealed and public not in sealed  # encrypted at rest

    again = runner.invoke(args=["webpush", "keys"])
    assert again.exit_code == 2
    assert "exist already" in again.output and "--force" in again.output
    with plugin_app.app_context(), system_scope():
        assert settings.deployment("webpush")["vapid_private_key"] == private

    # New keys void every subscription (they were made with the old public key).
    patient = make_patient(plugin_app, clinic)
    subscribe(plugin_app, clinic, patient, push.device(server_key=public))
    forced = runner.invoke(args=["webpush", "keys", "--force"])
    assert forced.exit_code == 0, forced.output
    with plugin_app.app_context(), system_scope():
        renewed = settings.deployment("webpush")
    assert renewed["vapid_private_key"] != private
    assert renewed["vapid_public_key"] in forced.output
    assert renewed["vapid_private_key"] not in forced.output
    assert devices(plugin_app, clinic) == []


def test_without_keys_push_is_a_permanent_failure_and_sms_takes_over(plugin_app, clinic, push):
    patient = make_patient(plugin_app, clinic)
    subscribe(plugin_app, clinic, patient, push.device())
    message_id = send(plugin_app, clinic, patient)

    run_job(plugin_app, clinic, message_id)

    assert [o for _, o in attempts(plugin_app, clinic, message_id)] == ["permanent", "accepted"]
    assert message(plugin_app, clinic, message_id).provider == "outbox_sms"
    assert push.received == []


# --- through the pipeline ---------------------------------------------------------------------


def test_the_phone_decrypts_the_text_and_its_acknowledgement_marks_it_delivered(
    plugin_app, clinic, public_key, push, app_server, worker
):
    patient = make_patient(plugin_app, clinic)
    browser = patient_session(plugin_app, clinic, patient)
    page = browser.get("/me/notifications")
    assert page.status_code == 200 and public_key in page.text  # the applicationServerKey
    phone = push.device(server_key=public_key)
    answer = browser.post(
        "/me/notifications/subscriptions",
        json=phone.info(),
        headers={"X-CSRFToken": page_csrf(browser, "/me/notifications"), "User-Agent": CHROME},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json["device"] == "Chrome · Android"

    message_id = send(plugin_app, clinic, patient)  # the worker takes it from Redis
    wait_until(lambda: push.received)

    [received] = push.received
    assert received.payload["body"] == TEXT  # what the phone shows, decrypted with its keys
    with plugin_app.app_context(), force_locale(patient.language):
        title = gettext("Message from %(clinic)s", clinic="Clinic demo")  # no subject
    assert received.payload["title"] == title
    assert received.payload["message_id"] == str(message_id)
    assert received.payload["url"] == "/me/"
    assert received.claims["sub"] == CONTACT and received.claims["aud"] == push.origin
    assert received.headers["ttl"] == "300" and received.headers["urgency"] == "high"
    assert received.headers["topic"] == message_id.hex
    wait_until(lambda: message(plugin_app, clinic, message_id).status == MessageStatus.SENT)
    assert message(plugin_app, clinic, message_id).provider == "webpush"

    # A forged acknowledgement is refused and changes nothing.
    forged = acknowledge(app_server, received.payload, token="0" * 64)
    assert forged.status_code == 401
    assert message(plugin_app, clinic, message_id).status == MessageStatus.SENT

    assert acknowledge(app_server, received.payload).status_code == 204
    done = message(plugin_app, clinic, message_id)
    assert done.status == MessageStatus.DELIVERED and done.delivered_at is not None
    assert acknowledge(app_server, received.payload).status_code == 204  # twice: no change
    assert [s for s, _ in events(plugin_app, clinic, message_id)].count("delivered") == 1
    assert sms(plugin_app, clinic)[1:] == []  # only the access link went by SMS


def test_a_gone_subscription_is_removed_and_the_message_goes_by_sms(
    plugin_app, clinic, public_key, push, worker
):
    patient = make_patient(plugin_app, clinic)
    phone = push.device(server_key=public_key)
    subscribe(plugin_app, clinic, patient, phone)
    push.gone(phone)  # the patient reset their browser: the push service answers 410

    message_id = send(plugin_app, clinic, patient)
    wait_until(lambda: message(plugin_app, clinic, message_id).status == MessageStatus.SENT)

    assert push.answers == [(phone.id, 410)]
    assert devices(plugin_app, clinic) == []
    assert attempts(plugin_app, clinic, message_id) == [
        ("webpush", "unreachable"),
        ("outbox_sms", "accepted"),
    ]
    assert sms(plugin_app, clinic) == [(patient.phone, TEXT)]


def test_one_gone_device_of_two_is_removed_and_the_other_gets_it(
    plugin_app, clinic, public_key, push
):
    patient = make_patient(plugin_app, clinic)
    old, new = push.device(server_key=public_key), push.device(server_key=public_key)
    subscribe(plugin_app, clinic, patient, old)
    subscribe(plugin_app, clinic, patient, new)
    push.fail_next(404, device=old)

    message_id = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, message_id)

    assert [p["body"] for p in push.payloads(new)] == [TEXT]
    assert devices(plugin_app, clinic) == [new.endpoint]
    assert message(plugin_app, clinic, message_id).provider == "webpush"


def test_without_acknowledgement_in_time_the_message_goes_by_sms(
    plugin_app, clinic, public_key, push, app_server
):
    patient = make_patient(plugin_app, clinic)
    subscribe(plugin_app, clinic, patient, push.device(server_key=public_key))
    message_id = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, message_id)
    assert message(plugin_app, clinic, message_id).status == MessageStatus.SENT

    with plugin_app.app_context():
        assert sweeper.sweep()["unacknowledged"] == 0  # not yet
    minutes_pass(plugin_app, clinic, message_id, minutes=4)
    with plugin_app.app_context():
        assert sweeper.sweep()["unacknowledged"] == 0  # 4 minutes: still waiting
    minutes_pass(plugin_app, clinic, message_id, minutes=2)
    with plugin_app.app_context():
        assert sweeper.sweep()["unacknowledged"] == 1  # 6: past the 5 minutes' default

    waiting = message(plugin_app, clinic, message_id)
    assert (waiting.status, waiting.channel) == (MessageStatus.PENDING, "sms")
    run_job(plugin_app, clinic, message_id)
    sent = message(plugin_app, clinic, message_id)
    assert (sent.status, sent.provider) == (MessageStatus.SENT, "outbox_sms")
    assert sms(plugin_app, clinic) == [(patient.phone, TEXT)]
    assert ("fallback", "webpush: no device acknowledged it within 5 minutes") in events(
        plugin_app, clinic, message_id
    )

    # The phone comes back online and acknowledges, late: what SMS did is not its business.
    assert acknowledge(app_server, push.received[0].payload).status_code == 204
    late = message(plugin_app, clinic, message_id)
    assert (late.status, late.provider) == (MessageStatus.SENT, "outbox_sms")


def test_the_acknowledgement_timeout_is_a_setting_per_country(plugin_app, clinic, public_key, push):
    configure(plugin_app, push, ack_timeout="30")
    patient = make_patient(plugin_app, clinic)
    subscribe(plugin_app, clinic, patient, push.device(server_key=public_key))
    message_id = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, message_id)

    minutes_pass(plugin_app, clinic, message_id, minutes=20)
    with plugin_app.app_context():
        assert sweeper.sweep()["unacknowledged"] == 0
    minutes_pass(plugin_app, clinic, message_id, minutes=11)
    with plugin_app.app_context():
        assert sweeper.sweep()["unacknowledged"] == 1
    assert message(plugin_app, clinic, message_id).channel == "sms"


def test_without_acknowledgement_and_no_channel_left_the_message_is_undelivered(
    plugin_app, clinic, public_key, push
):
    patient = make_patient(plugin_app, clinic)
    subscribe(plugin_app, clinic, patient, push.device(server_key=public_key))
    message_id = send(plugin_app, clinic, patient, channels=("push",))
    run_job(plugin_app, clinic, message_id)

    minutes_pass(plugin_app, clinic, message_id, minutes=6)
    with plugin_app.app_context():
        assert sweeper.sweep()["unacknowledged"] == 1
        assert sweeper.sweep()["unacknowledged"] == 0  # final: never taken again

    done = message(plugin_app, clinic, message_id)
    assert done.status == MessageStatus.UNDELIVERED and done.finished_at is not None
    assert events(plugin_app, clinic, message_id)[-1] == (
        "undelivered",
        "webpush: no device acknowledged it within 5 minutes; no channel left in the plan",
    )


def test_an_acknowledgement_sent_to_another_clinic_changes_nothing(
    plugin_app, clinic, public_key, push, app_server
):
    make_clinic(plugin_app, "other", "FR", plugins=ENABLED)
    patient = make_patient(plugin_app, clinic)
    subscribe(plugin_app, clinic, patient, push.device(server_key=public_key))
    message_id = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, message_id)
    [received] = push.received

    elsewhere = received.payload["ack"].replace("//demo.", "//other.")
    assert acknowledge(app_server, received.payload, url=elsewhere).status_code == 401
    # Even with a token made for the other clinic's address, its messages are not ours.
    with plugin_app.app_context(), system_scope():
        private = settings.deployment("webpush")["vapid_private_key"]
    token = ack_token(private, elsewhere, message_id)
    assert acknowledge(app_server, received.payload, token, elsewhere).status_code == 204
    assert message(plugin_app, clinic, message_id).status == MessageStatus.SENT


def test_a_patient_who_switched_push_off_gets_sms_directly(plugin_app, clinic, public_key, push):
    patient = make_patient(plugin_app, clinic)
    browser = patient_session(plugin_app, clinic, patient)
    subscribe(plugin_app, clinic, patient, push.device(server_key=public_key))
    with plugin_app.app_context(), tenant_scope(clinic.id):
        tenant = db.session.get(Tenant, clinic.id)
        who = db.session.get(Patient, (clinic.id, patient.id))
        address = hooks_for(tenant).relais_channel_address(
            tenant=tenant, patient=who, channel="push"
        )
        assert [s["endpoint"] for s in json.loads(address)] == devices(plugin_app, clinic)

    off = browser.post(
        "/me/notifications/off", data={"csrf_token": page_csrf(browser, "/me/notifications")}
    )
    assert off.status_code == 303
    assert devices(plugin_app, clinic) == []
    with plugin_app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        assert (
            hooks_for(tenant).relais_channel_address(tenant=tenant, patient=who, channel="push")
            is None
        )

    message_id = send(plugin_app, clinic, patient)
    run_job(plugin_app, clinic, message_id)

    assert push.answers == []
    assert attempts(plugin_app, clinic, message_id) == [("outbox_sms", "accepted")]
    assert ("fallback", "the patient cannot receive by push") in events(
        plugin_app, clinic, message_id
    )


def test_a_message_too_long_for_a_push_is_cut_to_fit(plugin_app, clinic, public_key, push):
    patient = make_patient(plugin_app, clinic)
    subscribe(plugin_app, clinic, patient, push.device(server_key=public_key))
    message_id = send(plugin_app, clinic, patient, text="é" * 3000, channels=("push",))
    run_job(plugin_app, clinic, message_id)

    [payload] = push.payloads()
    assert payload["body"].startswith("éé") and payload["body"].endswith("…")
    compact = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    assert len(compact.encode()) <= 3993  # 4096 bytes once encrypted
    assert message(plugin_app, clinic, message_id).status == MessageStatus.SENT


# --- the patient's notifications page -------------------------------------------------------


def test_subscriptions_are_checked_and_belong_to_the_patient(plugin_app, clinic, public_key, push):
    patient = make_patient(plugin_app, clinic)
    other = make_patient(plugin_app, clinic, first_name="Paul", phone="0612345679")
    browser = patient_session(plugin_app, clinic, patient)
    token = page_csrf(browser, "/me/notifications")
    good = push.device(server_key=public_key).info()

    def post(body, headers=None):
        return browser.post(
            "/me/notifications/subscriptions",
            json=body,
            headers={"X-CSRFToken": token, **(headers or {})},
        )

    bad_key = {**good, "keys": {**good["keys"], "p256dh": "AAAA"}}
    bad_auth = {**good, "keys": {**good["keys"], "auth": base64.b64encode(b"x").decode()}}
    elsewhere = {**good, "endpoint": "https://push.attacker.example/push/1"}
    inside = {**good, "endpoint": "http://10.0.0.1/admin"}
    for body, field in (
        (bad_key, "keys.p256dh"),
        (bad_auth, "keys.auth"),
        (elsewhere, "endpoint"),
        (inside, "endpoint"),
        ([1, 2], "endpoint"),
    ):
        answer = post(body)
        assert answer.status_code == 422 and answer.json["error"]["field"] == field, body
        assert answer.json["error"]["message"]
    assert browser.post("/me/notifications/subscriptions", json=good).status_code == 400  # CSRF
    assert devices(plugin_app, clinic) == []

    assert post(good).status_code == 201
    page = browser.get("/me/notifications")
    assert "Chrome · Android" not in page.text  # no User-Agent was sent: a generic name
    # Another patient's device cannot be removed from here.
    other_phone = push.device(server_key=public_key)
    subscribe(plugin_app, clinic, other, other_phone)
    with plugin_app.app_context(), tenant_scope(clinic.id):
        theirs = db.session.scalar(
            sa.select(PushSubscription.id).where(PushSubscription.patient_id == other.id)
        )
        mine = db.session.scalar(
            sa.select(PushSubscription.id).where(PushSubscription.patient_id == patient.id)
        )
    csrf = page_csrf(browser, "/me/notifications")
    removed = browser.post(
        "/me/notifications/devices/remove", data={"csrf_token": csrf, "device": str(theirs)}
    )
    assert removed.status_code == 303
    assert sorted(devices(plugin_app, clinic)) == sorted([good["endpoint"], other_phone.endpoint])
    browser.post("/me/notifications/devices/remove", data={"csrf_token": csrf, "device": str(mine)})
    assert devices(plugin_app, clinic) == [other_phone.endpoint]


def test_the_service_worker_is_served_for_the_patient_pages(plugin_app, clinic):
    client = client_for(plugin_app, clinic.slug)
    worker_js = client.get("/me/sw.js")
    assert worker_js.status_code == 200
    assert worker_js.mimetype == "application/javascript"
    assert "showNotification" in worker_js.text and "notificationclick" in worker_js.text
    assert client.get("/me/notifications.js").mimetype == "application/javascript"
    # Not a patient: no notifications page, no subscriptions.
    assert client.get("/me/notifications").status_code == 401
    refused = client.post(
        "/me/notifications/subscriptions",
        json={},
        headers={"X-CSRFToken": "x", "Accept": "application/json"},
    )
    assert refused.status_code in (400, 401)


# --- access links and sessions ------------------------------------------------------------------


def fr(message: str, **variables) -> str:
    """What a French clinic's pages say (its patients read French), as HTML."""
    with force_locale("fr"):
        return str(escape(gettext(message, **variables)))


def access_path(app, tenant, patient) -> str:
    from core.delivery.access_links import make_token

    with app.app_context():
        return f"/me/access/{make_token(tenant, patient)}"


def use(client, path):
    return client.post(path, data={"csrf_token": csrf_token(client, path)})


def test_an_access_link_opens_one_session_once(plugin_app, clinic, caplog):
    caplog.set_level("DEBUG")
    patient = make_patient(plugin_app, clinic)
    path = access_path(plugin_app, clinic, patient)
    browser = client_for(plugin_app, clinic.slug)
    assert browser.get(path).status_code == 200  # a link scanner's GET uses nothing
    assert use(browser, path).status_code == 302
    home = browser.get("/me/")
    assert home.status_code == 200 and "Jeanne" in home.text and "Clinic demo" in home.text
    assert "112" in home.text  # the country's emergency number
    with plugin_app.app_context(), tenant_scope(clinic.id):
        tenant = db.session.get(Tenant, clinic.id)
        who = db.session.get(Patient, (clinic.id, patient.id))
        cards = hooks_for(tenant).relais_patient_home_cards(tenant=tenant, patient=who)
        [[card]] = cards  # the webpush plugin's, on the patient's home page
        assert card.lines[0].state == "Off"  # no device subscribed yet (out of a request)
        assert 'href="/me/notifications"' in home.text
        assert fr("Notifications on this device") in home.text
        used = fr("This link was already used. Ask your clinic to send you a new one.")

    again = client_for(plugin_app, clinic.slug)
    refused = again.get(path)
    assert refused.status_code == 404 and used in refused.text
    assert again.get("/me/").status_code == 401
    assert path.rpartition("/")[2] not in caplog.text  # never logged


def test_an_expired_or_foreign_access_link_is_refused(plugin_app, clinic, monkeypatch):
    patient = make_patient(plugin_app, clinic)
    day_ago = int(time.time()) - 24 * 3600 - 60
    with monkeypatch.context() as m:
        m.setattr(TimestampSigner, "get_timestamp", lambda self: day_ago)
        expired = access_path(plugin_app, clinic, patient)
    browser = client_for(plugin_app, clinic.slug)
    page = browser.get(expired)
    assert page.status_code == 404
    with plugin_app.app_context():
        assert fr("This link has expired. Ask your clinic to send you a new one.") in page.text
    assert browser.get("/me/").status_code == 401

    other = make_clinic(plugin_app, "other", "FR", plugins=ENABLED)
    theirs = make_patient(plugin_app, other)
    foreign = access_path(plugin_app, other, theirs)
    assert browser.get(foreign).status_code == 404
    assert use(browser, foreign).status_code == 404  # not on this clinic
    assert browser.get("/me/").status_code == 401
    assert browser.get("/me/access/not-a-token").status_code == 404


def test_staff_and_patient_sessions_grant_each_other_nothing(plugin_app, clinic):
    staff = client_for(plugin_app, clinic.slug)
    log_in(staff, make_staff(plugin_app, clinic, "admin"))
    assert staff.get("/me/").status_code == 401
    assert staff.get("/me/notifications").status_code == 401

    patient = make_patient(plugin_app, clinic)
    browser = client_for(plugin_app, clinic.slug)
    assert use(browser, access_path(plugin_app, clinic, patient)).status_code == 302
    for path in ("/", "/patients", f"/patients/{patient.id}", "/messages", "/outbox"):
        page = browser.get(path)
        assert page.status_code == 302 and "/login" in page.headers["Location"], path

    # A staff member who opens a patient's link in their browser leaves their staff session.
    assert use(staff, access_path(plugin_app, clinic, patient)).status_code == 302
    assert staff.get("/patients").status_code == 302
    assert staff.get("/me/").status_code == 200
    # The patient logs out: nothing left.
    csrf = csrf_token(browser, "/me/")
    assert browser.post("/me/logout", data={"csrf_token": csrf}).status_code == 200
    assert browser.get("/me/").status_code == 401


def test_no_access_link_for_a_patient_who_cannot_receive_it(plugin_app, clinic):
    patient = make_patient(plugin_app, clinic, phone="", email="")
    staff = client_for(plugin_app, clinic.slug)
    log_in(staff, make_staff(plugin_app, clinic, "secretary"))
    path = f"/patients/{patient.id}"
    sent = staff.post(f"{path}/access-link", data={"csrf_token": csrf_token(staff, path)})
    assert sent.status_code == 303
    with plugin_app.app_context():
        expected = fr(
            "Add the patient's mobile phone or e-mail address first: the link goes there."
        )
    assert expected in staff.get(path).text
    with plugin_app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(Message)).all() == []


def test_staff_never_read_an_access_link_in_the_message_log(plugin_app, clinic):
    patient = make_patient(plugin_app, clinic)
    staff = client_for(plugin_app, clinic.slug)
    log_in(staff, make_staff(plugin_app, clinic, "admin"))
    path = f"/patients/{patient.id}"
    assert (
        staff.post(f"{path}/access-link", data={"csrf_token": csrf_token(staff, path)}).status_code
        == 303
    )
    with plugin_app.app_context(), tenant_scope(clinic.id):
        message = db.session.scalars(sa.select(Message)).one()
        link = re.search(r"https?://\S+/me/access/\S+", message.content["text"])[0]
    page = staff.get(f"/messages/{message.id}")
    assert page.status_code == 200
    assert link not in page.text and "/me/access/" not in page.text
    with plugin_app.app_context(), force_locale("fr"):  # the template's text, as is
        hidden = gettext(
            "Hidden: this message holds a secret for the patient alone (an access link or a code)."
        )
    assert hidden in page.text
