"""Campaigns by push (the patient's devices) and by voice (a call reading the text): offered
where the clinic has a provider, counted per channel in the database, previewed as the
channel shapes them, and delivered by a real worker to the loopback push service and the
loopback Twilio Voice.
"""

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import consent, settings
from core.clinic.models import ConsentAction, ConsentMethod, Patient
from core.db import db
from core.delivery.models import Message
from core.plugins import DEFAULT_PLUGINS, hooks_for
from plugins.channels.voice_twilio import speech
from plugins.channels.webpush import subscriptions
from plugins.channels.webpush.provider import MAX_PAYLOAD, WebPush
from plugins.features.campaigns.models import Campaign
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.push_service import FakePushService
from tests.fakes.twilio_voice import FakeTwilioVoice
from tests.plugins.features.test_campaigns_worker import done, stop, worker
from tests.worlds import (
    OPEN_HOURS,
    HostClient,
    client_for,
    consent_to_campaigns,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
    wait_until,
)

CHANNELS = ("fr", "outbox", "webpush", "voice_twilio", "campaigns")
CHROME = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
CALLER = "+33644630101"
TEXT = "Bonjour {{ patient }}, la vaccination contre la grippe commence le 12/10/2026."


@pytest.fixture
def clock():
    """A Wednesday morning in Paris, time standing still (campaigns may leave)."""
    with time_machine.travel(OPEN_HOURS, tick=False) as traveller:
        yield traveller


@pytest.fixture
def push():
    with FakePushService() as fake:
        yield fake


def vapid_keys(app) -> str:
    """The deployment's keys, made as an operator makes them; the public key."""
    result = app.test_cli_runner().invoke(args=["webpush", "keys", "--force"])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[0]


def configure_push(app, push) -> str:
    key = vapid_keys(app)
    with app.app_context(), system_scope():
        values = {"contact": "mailto:ops@relais.example", "push_services": push.origin}
        settings.save("FR", "webpush", values)
        db.session.commit()
    return key


def subscribe(app, tenant, patient, device) -> None:
    """A device the patient turned notifications on in (as the page's POST does)."""
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        subscriptions.subscribe(who, device.info(), CHROME, [device.endpoint.split("/push/")[0]])
        db.session.commit()


def route_voice(app) -> None:
    """French calls go through Twilio (not the development outbox)."""
    with app.app_context(), system_scope():
        route = ProviderRoute(country_code="FR", channel="voice", provider="twilio_voice")
        db.session.add(route)
        db.session.commit()


def opt_out(app, tenant, patient, channel) -> None:
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        consent.record(who, channel, ConsentAction.WITHDRAWN, ConsentMethod.SMS_REPLY, "patient")
        db.session.commit()


def admin(app, tenant) -> HostClient:
    staff = client_for(app, tenant.slug)
    log_in(staff, make_staff(app, tenant, "admin"))
    return staff


def draft(staff, channels, text=TEXT, name="Grippe 2026") -> str:
    form = {
        "csrf_token": csrf_token(staff, "/campaigns/new"),
        "name": name,
        "channels": list(channels),
        "default_language": "fr",
        "template_fr": text,
    }
    page = staff.post("/campaigns/new", data=form)
    assert page.status_code == 303, page.text
    return page.headers["Location"].rsplit("/", 1)[-1]


# --- offered channels, counts and previews (France's own rules) ------------------------------


def test_push_and_voice_are_offered_only_where_the_clinic_has_a_provider(app, clock):
    without = make_clinic(app, "plain", plugins=("fr", "outbox", "campaigns"))
    staff = admin(app, without)
    page = staff.get("/campaigns/new")
    assert 'value="sms"' in page.text and 'value="push"' not in page.text
    form = {
        "csrf_token": csrf_token(staff, "/campaigns/new"),
        "name": "Grippe",
        "channels": "push",
        "default_language": "fr",
        "template_fr": "Bonjour",
    }
    refused = staff.post("/campaigns/new", data=form)
    assert refused.status_code == 422 and "sms, email" in refused.text

    equipped = make_clinic(app, "equipped", plugins=CHANNELS)
    page = admin(app, equipped).get("/campaigns/new")
    assert 'value="push"' in page.text and 'value="voice"' in page.text


def test_push_and_voice_are_counted_by_consent_opt_out_and_address(app, clock, push):
    clinic = make_clinic(app, "demo", plugins=CHANNELS)
    key = configure_push(app, push)
    subscribed = make_patient(app, clinic, first_name="Alice", phone="0612345601")
    consent_to_campaigns(app, clinic, subscribed, ("push", "voice"))
    subscribe(app, clinic, subscribed, push.device(server_key=key))
    unsubscribed = make_patient(app, clinic, first_name="Berthe", phone="0612345602")
    consent_to_campaigns(app, clinic, unsubscribed, ("push", "voice"))
    out = make_patient(app, clinic, first_name="Chloé", phone="")
    subscribe(app, clinic, out, push.device(server_key=key))
    consent_to_campaigns(app, clinic, out, ("push",))
    opt_out(app, clinic, out, "push")
    staff = admin(app, clinic)

    body = staff.get("/campaigns/count?channels=push&channels=voice").json
    assert body["total"] == 3
    assert body["channels"]["push"] == {
        "reachable": 1,
        "no_address": 1,  # Berthe turned no device's notifications on
        "opted_out": 1,
        "no_consent": 0,
    }
    assert body["channels"]["voice"] == {
        "reachable": 2,
        "no_address": 1,  # Chloé has no phone
        "opted_out": 0,
        "no_consent": 0,
    }
    assert body["recipients"] == 2


def test_an_operator_starts_a_push_campaign_in_the_clinics_that_carry_push(
    app, clock, push, runner
):
    clinic = make_clinic(app, "demo", plugins=CHANNELS)
    patient = make_patient(app, clinic, first_name="Alice")
    consent_to_campaigns(app, clinic, patient, ("push",))
    subscribe(app, clinic, patient, push.device(server_key=configure_push(app, push)))
    args = ["campaigns", "country-start", "--country", "FR", "--name", "Octobre rose"]
    args += ["--default-language", "fr", "--text", "fr=Bonjour {{ patient }}, dépistage."]
    started = runner.invoke(args=[*args, "--channel", "push"])
    assert started.exit_code == 0, started.output
    outcome = dict(line.split(None, 1) for line in started.output.splitlines()[1:])
    assert outcome == {"demo": "started"}
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(Campaign.channels)) == ["push"]


def test_the_push_address_in_sql_agrees_with_the_address_of_each_patient(app, push):
    """``relais_channel_address_sql`` (counts) and ``relais_channel_address`` (sending) say
    the same of who can receive a push."""
    clinic = make_clinic(app, "demo", plugins=CHANNELS)
    key = configure_push(app, push)
    subscribed = make_patient(app, clinic, first_name="Alice")
    subscribe(app, clinic, subscribed, push.device(server_key=key))
    make_patient(app, clinic, first_name="Berthe")
    with app.app_context(), tenant_scope(clinic.id):
        hooks = hooks_for(clinic)
        condition = hooks.relais_channel_address_sql(tenant=clinic, channel="push")
        assert hooks.relais_channel_address_sql(tenant=clinic, channel="fax") is None
        found = db.session.scalars(sa.select(Patient.first_name).where(condition)).all()
        by_address = [
            p.first_name
            for p in db.session.scalars(sa.select(Patient).order_by(Patient.first_name))
            if hooks.relais_channel_address(tenant=clinic, patient=p, channel="push")
        ]
    assert found == by_address == ["Alice"]


def test_previews_show_the_notification_and_the_spoken_text_and_the_rules(app, clock, push):
    clinic = make_clinic(app, "demo", plugins=CHANNELS)
    patient = make_patient(app, clinic, first_name="Alice", phone="0142685300")
    consent_to_campaigns(app, clinic, patient, ("sms", "push", "voice"))
    subscribe(app, clinic, patient, push.device(server_key=configure_push(app, push)))
    route_voice(app)
    staff = admin(app, clinic)
    campaign_id = draft(staff, ("sms", "push", "voice"), name="Grippe " + "x" * 150)

    page = staff.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200
    text = "Bonjour Jeanne, la vaccination contre la grippe commence le 12/10/2026."  # a sample
    assert f"{text}\nSTOP au 36180" in page.text  # the SMS, with France's STOP mention
    assert f'id="preview-push-title"><strong>Grippe {"x" * 113}</strong>' in page.text
    assert f'id="preview-push">{text}</pre>' in page.text  # no STOP mention on a push
    spoken = speech.spoken(text, "fr")
    assert "12/10/2026" not in spoken
    assert f'id="preview-voice">{spoken}</pre>' in page.text
    assert "appel pour les messages non essentiels" in page.text  # France's rules

    started = staff.post(
        f"/campaigns/{campaign_id}/start",
        data={"csrf_token": csrf_token(staff, f"/campaigns/{campaign_id}")},
    )
    assert started.status_code == 422 and "VOICE" in started.text
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Message.id))) == 0


def test_a_push_preview_is_cut_as_the_push_is(app):
    """A text longer than a push carries (a campaign's variables can make it so) is shown
    cut, marked "…", as the device will show it."""
    with app.test_request_context():
        shown = WebPush(settings={}).preview("é" * 3000, None, "fr")
    assert shown["text"].endswith("…") and 3500 < len(shown["text"].encode()) < MAX_PAYLOAD
    assert shown["title"] == "New message"


# --- delivery by a real worker, under the stand-in rules ------------------------------------

PLUGINS = (*DEFAULT_PLUGINS, "tests.plugins.features.open_rules")
OPEN = ("open_rules", "outbox", "webpush", "voice_twilio", "campaigns")


def started(staff, channels) -> str:
    campaign_id = draft(staff, channels)
    token = csrf_token(staff, f"/campaigns/{campaign_id}")
    answer = staff.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": token})
    assert answer.status_code == 303, answer.text
    return campaign_id


def run(staff, campaign_id, tmp_path, until) -> dict:
    """A real ``relais worker`` until ``until()`` holds and the campaign is done."""
    logs = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    running = worker(logs)
    try:
        wait_until(until, timeout=60)
        return done(staff, campaign_id)
    finally:
        stop(running)
        logs.close()
        print((tmp_path / "worker.log").read_text()[-3000:])


def test_a_campaign_by_push_reaches_the_subscribed_device_and_sms_the_others(
    plugin_app, push, tmp_path
):
    clinic = make_clinic(plugin_app, "demo", plugins=OPEN)
    key = configure_push(plugin_app, push)
    alice = make_patient(plugin_app, clinic, first_name="Alice", phone="0612345601")
    consent_to_campaigns(plugin_app, clinic, alice, ("push", "sms"))
    phone = push.device(server_key=key)
    subscribe(plugin_app, clinic, alice, phone)
    berthe = make_patient(plugin_app, clinic, first_name="Berthe", phone="0612345602")
    consent_to_campaigns(plugin_app, clinic, berthe, ("push", "sms"))
    staff = admin(plugin_app, clinic)

    campaign_id = started(staff, ("push", "sms"))
    progress = run(staff, campaign_id, tmp_path, lambda: push.received)

    [received] = push.received
    assert received.payload["title"] == "Grippe 2026"
    assert received.payload["body"].startswith("Bonjour Alice, la vaccination")
    assert progress["written"] == 2
    with plugin_app.app_context(), tenant_scope(clinic.id):
        messages = db.session.scalars(sa.select(Message)).all()
        channels = {m.patient_id: m.channel for m in messages}
    assert channels == {alice.id: "push", berthe.id: "sms"}  # Berthe has no device


def test_a_campaign_by_voice_calls_the_patient_and_reads_the_text(plugin_app, app_server, tmp_path):
    with FakeTwilioVoice(caller=CALLER, post=app_server.post) as voice:
        clinic = make_clinic(plugin_app, "demo", plugins=OPEN)
        with plugin_app.app_context(), system_scope():
            values = {
                "account_sid": voice.account_sid,
                "auth_token": voice.auth_token,
                "caller": CALLER,
                "base_url": voice.base_url,
            }
            settings.save("FR", "voice_twilio", values)
            db.session.commit()
        route_voice(plugin_app)
        landline = make_patient(plugin_app, clinic, first_name="Alice", phone="01 42 68 53 00")
        consent_to_campaigns(plugin_app, clinic, landline, ("voice",))
        staff = admin(plugin_app, clinic)

        campaign_id = started(staff, ("voice",))
        progress = run(staff, campaign_id, tmp_path, lambda: voice.calls)

    [call] = voice.calls
    spoken = speech.spoken(
        "Bonjour Alice, la vaccination contre la grippe commence le 12/10/2026.", "fr"
    )
    assert call.to == "+33142685300"
    assert call.says() == [spoken, "Je répète :", spoken]
    assert progress["written"] == 1
