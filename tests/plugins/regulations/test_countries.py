"""The four country plugins, on a controlled clock: quiet hours, consent and STOP, the French
STOP mention, sender IDs, health details, non-essential calls, and what staff and the API see.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import apikeys, consent, settings
from core.clinic.models import ConsentAction, ConsentMethod, Patient
from core.db import db
from core.delivery import outbox, receipts, routing, sms
from core.delivery.models import InboundMessage, Message
from core.delivery.providers import Inbound
from core.plugins import host
from tenants import provisioning
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import client_for, csrf_token, log_in, make_clinic, make_patient, make_staff

PHONES = {"FR": "+33612345678", "DE": "+4915123456789", "IT": "+393471234567", "NL": "+31612345678"}
ZONES = {
    "FR": "Europe/Paris",
    "DE": "Europe/Berlin",
    "IT": "Europe/Rome",
    "NL": "Europe/Amsterdam",
}
CAMPAIGN = "Flu vaccination is open at your clinic."


def local(country: str, text: str) -> datetime:
    """A wall-clock time in the country's zone, e.g. local("FR", "2026-03-28 19:59")."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONES[country]))


@pytest.fixture
def world(app):
    """One clinic per country, its plugin enabled, a patient who consented to SMS, and the
    French STOP mention set."""
    clinics, patients = {}, {}
    for code in ZONES:
        clinic = make_clinic(app, f"clinic-{code.lower()}", code, plugins=(code.lower(),))
        patient = make_patient(app, clinic, phone=PHONES[code])
        with app.app_context(), tenant_scope(clinic.id):
            who = db.session.get(Patient, (clinic.id, patient.id))
            consent.record(who, "sms", ConsentAction.GIVEN, ConsentMethod.PAPER, "test")
            if code == "DE":
                consent.record(who, "sms", ConsentAction.CONFIRMED, ConsentMethod.LINK, "test")
            db.session.commit()
        clinics[code], patients[code] = clinic, patient
    with app.app_context(), system_scope():
        settings.save("FR", "fr", {"stop_mention": "STOP au 36180"})
        db.session.commit()
    return clinics, patients


def send(app, clinic, patient, at=None, purpose="campaign", template=CAMPAIGN, **kwargs):
    """Send through the real outbox at ``at`` (a controlled clock); return the message."""
    at = at or datetime.now(UTC)
    with time_machine.travel(at, tick=False), app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        message = outbox.send(
            clinic,
            who,
            purpose,
            template,
            kwargs.pop("variables", {}),
            kwargs.pop("channels", ("sms",)),
            **kwargs,
        )
        db.session.commit()
        db.session.refresh(message)
        db.session.expunge(message)
        return message


def reply(app, clinic, patient, text):
    """A patient's SMS reply, as the inbound webhook hands it to the clinic."""
    with app.app_context(), tenant_scope(clinic.id):
        row = receipts.keep_inbound(
            clinic,
            patient.id,
            "twilio_sms",
            "sms",
            Inbound(sender=patient.phone, recipient="36180", text=text, at=datetime.now(UTC)),
        )
        db.session.commit()
        return row.handled_by


def messages(app, clinic, purpose=None):
    with app.app_context(), tenant_scope(clinic.id):
        query = sa.select(Message).order_by(Message.created_at)
        if purpose:
            query = query.where(Message.purpose == purpose)
        return list(db.session.scalars(query))


# --- quiet hours --------------------------------------------------------------------------------


def test_france_saturday_1959_goes_and_2000_waits_for_monday(app, world):
    clinics, patients = world
    goes = send(app, clinics["FR"], patients["FR"], local("FR", "2026-03-28 19:59"))
    assert goes.status == "pending" and goes.verdict == "amend"  # the STOP mention
    waits = send(app, clinics["FR"], patients["FR"], local("FR", "2026-03-28 20:00"))
    assert waits.status == "scheduled" and waits.verdict == "defer"
    # Sunday skipped; the clocks went forward that night: 08:00 in Paris is 06:00 UTC.
    assert waits.next_attempt_at == local("FR", "2026-03-30 08:00") == waits.verdict_until
    assert waits.verdict_rule == "quiet_hours" and waits.verdict_plugin == "fr"
    assert waits.verdict_reason.startswith("quiet hours in France")


def test_france_easter_monday_pushes_a_saturday_evening_campaign_to_tuesday(app, world):
    clinics, patients = world
    waits = send(app, clinics["FR"], patients["FR"], local("FR", "2026-04-04 20:00"))
    assert waits.next_attempt_at == local("FR", "2026-04-07 08:00")


@pytest.mark.parametrize("code", ["DE", "IT", "NL"])
def test_other_countries_wait_for_monday_too(app, world, code):
    clinics, patients = world
    goes = send(app, clinics[code], patients[code], local(code, "2026-11-21 19:59"))
    assert goes.status == "pending"
    waits = send(app, clinics[code], patients[code], local(code, "2026-11-21 20:00"))
    assert waits.next_attempt_at == local(code, "2026-11-23 08:00")
    sunday = send(app, clinics[code], patients[code], local(code, "2026-11-22 12:00"))
    assert sunday.next_attempt_at == local(code, "2026-11-23 08:00")


def test_a_country_setting_moves_the_window(app, world):
    clinics, patients = world
    with app.app_context(), system_scope():
        settings.save("FR", "fr", {"stop_mention": "STOP au 36180", "quiet_end": "22:00"})
        db.session.commit()
    goes = send(app, clinics["FR"], patients["FR"], local("FR", "2026-11-20 21:30"))
    assert goes.status == "pending"
    with app.app_context(), system_scope(), pytest.raises(Exception, match="22:00"):
        settings.save("FR", "fr", {"quiet_end": "23:00"})


@pytest.mark.parametrize("code", list(ZONES))
def test_reminders_at_2300_and_codes_at_0300_are_never_deferred(app, world, code):
    clinics, patients = world
    reminder = send(app, clinics[code], patients[code], local(code, "2026-11-21 23:00"), "reminder")
    code_sms = send(app, clinics[code], patients[code], local(code, "2026-11-22 03:00"), "otp")
    assert (reminder.status, code_sms.status) == ("pending", "pending")
    assert reminder.verdict == code_sms.verdict == "allow"


# --- consent and opt-out --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "word"),
    [
        ("FR", "STOP"),
        ("FR", "Arrêt"),
        ("DE", "STOPP"),
        ("IT", "basta"),
        ("IT", "STOP"),
        ("NL", "Stop"),
    ],
)
def test_stop_replies_opt_out_once_and_end_campaigns(app, world, code, word):
    clinics, patients = world
    clinic, patient = clinics[code], patients[code]
    before = messages(app, clinic, "messaging")
    assert reply(app, clinic, patient, word).startswith("opt-out")
    assert reply(app, clinic, patient, word).startswith("opt-out")  # said twice...
    told = messages(app, clinic, "messaging")[len(before) :]
    assert len(told) == 1  # ...confirmed once, in the patient's language
    said = {"FR": "ne recevrez plus", "DE": "keine Neuigkeiten", "IT": "non riceverà più"}
    assert said.get(code, "geen nieuws") in told[0].content["text"]
    refused = send(app, clinic, patient, local(code, "2026-11-24 10:00"))
    assert refused.status == "denied" and refused.verdict_rule == "consent"
    assert "opted out of SMS" in refused.verdict_reason
    reminder = send(app, clinic, patient, local(code, "2026-11-24 10:00"), "reminder")
    assert reminder.status == "pending"  # transactional messages still go


def test_other_replies_are_left_to_other_features(app, world):
    clinics, patients = world
    assert reply(app, clinics["FR"], patients["FR"], "OUI") is None
    with app.app_context(), tenant_scope(clinics["FR"].id):
        assert db.session.scalars(sa.select(InboundMessage.handled_by)).all() == [None]


def test_no_consent_no_campaign(app, world):
    clinics, _ = world
    stranger = make_patient(app, clinics["NL"], phone="+31612345679")
    refused = send(app, clinics["NL"], stranger, local("NL", "2026-11-24 10:00"))
    assert refused.status == "denied"
    assert refused.verdict_reason == "no consent of the patient to non-essential messages by SMS"


def test_german_consent_counts_only_once_confirmed(app, world):
    clinics, _ = world
    berlin = clinics["DE"]
    anna = make_patient(app, berlin, first_name="Anna", phone="+4915123456780", language="de")
    with app.app_context(), tenant_scope(berlin.id):
        who = db.session.get(Patient, (berlin.id, anna.id))
        consent.record(who, "sms", ConsentAction.GIVEN, ConsentMethod.PAPER, "user:front-desk")
        db.session.commit()
    (request,) = [m for m in messages(app, berlin, "messaging") if m.patient_id == anna.id]
    assert "JA" in request.content["text"] and "/consent/" in request.content["text"]
    pending = send(app, berlin, anna, local("DE", "2026-11-24 10:00"))
    assert pending.status == "denied" and "not confirmed" in pending.verdict_reason
    assert reply(app, berlin, anna, "Ja") == "consent confirmed (JA)"
    confirmed = send(app, berlin, anna, local("DE", "2026-11-24 10:00"))
    assert confirmed.status == "pending"


def test_the_api_says_why_a_campaign_was_refused(app, world):
    clinics, patients = world
    clinic, patient = clinics["FR"], patients["FR"]
    reply(app, clinic, patient, "STOP")
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    answer = client_for(app, clinic.slug).post(
        "/api/v1/messages",
        json={"patient_id": str(patient.id), "purpose": "campaign", "template": CAMPAIGN},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["status"] == "denied"
    assert body["verdict"]["plugin"] == "fr" and body["verdict"]["rule"] == "consent"
    assert body["verdict"]["reason"].startswith("the patient opted out of SMS on ")


# --- content --------------------------------------------------------------------------------


def test_the_french_stop_mention_ends_campaign_sms_and_counts_in_segments(app, world):
    clinics, patients = world
    text = "Vaccination " + "x" * 140  # 152 characters: one SMS alone
    assert sms.segments(text) == ("GSM-7", 1)
    message = send(
        app, clinics["FR"], patients["FR"], local("FR", "2026-11-24 10:00"), template=text
    )
    assert message.content["text"] == f"{text}\nSTOP au 36180"
    assert sms.segments(message.content["text"]) == ("GSM-7", 2)  # the mention tipped it over
    reminder = send(app, clinics["FR"], patients["FR"], local("FR", "2026-11-24 10:00"), "reminder")
    assert "STOP" not in reminder.content["text"]  # transactional: no mention


def test_no_french_campaign_sms_without_a_stop_mention(app, world):
    clinics, patients = world
    with app.app_context(), system_scope():
        settings.save("FR", "fr", {})
        db.session.commit()
    refused = send(app, clinics["FR"], patients["FR"], local("FR", "2026-11-24 10:00"))
    assert refused.status == "denied" and refused.verdict_rule == "stop_mention"


REMINDER = "Rendez-vous mardi 10:00{% if reason %} pour {{ reason }}{% endif %}."


def test_health_details_are_left_out_of_sms_unless_the_clinic_allows_them(app, world):
    clinics, patients = world
    clinic, patient = clinics["FR"], patients["FR"]
    details = {"variables": {"reason": "IRM du genou"}}
    discreet = send(app, clinic, patient, purpose="reminder", template=REMINDER, **details)
    assert discreet.content["text"] == "Rendez-vous mardi 10:00."
    assert discreet.verdict == "amend" and discreet.verdict_rule == "health_details"
    by_email = send(
        app, clinic, patient, purpose="reminder", template=REMINDER, channels=("email",), **details
    )
    assert by_email.content["text"] == "Rendez-vous mardi 10:00 pour IRM du genou."
    with app.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "fr", {"health_details": "yes"})
        db.session.commit()
    allowed = send(app, clinic, patient, purpose="reminder", template=REMINDER, **details)
    assert allowed.content["text"] == "Rendez-vous mardi 10:00 pour IRM du genou."
    assert "discreet" not in allowed.content  # the variant without details is not kept


def test_campaigns_are_never_calls(app, world):
    clinics, patients = world
    only_voice = send(
        app, clinics["NL"], patients["NL"], local("NL", "2026-11-24 10:00"), channels=("voice",)
    )
    assert only_voice.status == "denied" and "no calls" in only_voice.verdict_reason
    text_first = send(
        app,
        clinics["NL"],
        patients["NL"],
        local("NL", "2026-11-24 10:00"),
        channels=("sms", "voice"),
    )
    assert text_first.channels == ["sms"] and text_first.status == "pending"


# --- senders --------------------------------------------------------------------------------


def route_sms(app, country, **values):
    """Enable Twilio SMS in ``country`` with these settings."""
    with app.app_context(), system_scope():
        provisioning.set_country_plugin(country, "sms_twilio", True)
        settings.save(country, "sms_twilio", values)
        db.session.commit()


def test_an_unregistered_italian_sender_is_refused(app, world):
    clinics, patients = world
    route_sms(app, "IT", sender="Clinica")
    refused = send(app, clinics["IT"], patients["IT"], local("IT", "2026-11-24 10:00"), "reminder")
    assert refused.status == "denied" and refused.verdict_rule == "sender"
    assert "Clinica is not registered" in refused.verdict_reason
    with app.app_context(), system_scope():
        settings.save("IT", "it", {"registered_senders": "Clinica, Studio"})
        db.session.commit()
    goes = send(app, clinics["IT"], patients["IT"], local("IT", "2026-11-24 10:00"), "reminder")
    assert goes.status == "pending"


@pytest.mark.parametrize(
    ("sender", "why"), [("INFO", "is generic"), ("+33612345670", "is a mobile number")]
)
def test_france_refuses_generic_and_mobile_senders(app, world, sender, why):
    clinics, patients = world
    route_sms(app, "FR", sender=sender)
    refused = send(app, clinics["FR"], patients["FR"], purpose="reminder")
    assert refused.status == "denied" and why in refused.verdict_reason


def test_campaigns_go_from_the_promotional_sender(app, world):
    clinics, patients = world
    route_sms(app, "FR", sender="36100", promotional_sender="36180")
    with app.app_context(), tenant_scope(clinics["FR"].id):
        assert routing.senders(clinics["FR"], "sms", "campaign") == [("twilio_sms", "36180")]
        assert routing.senders(clinics["FR"], "sms", "reminder") == [("twilio_sms", "36100")]


def test_the_operator_is_told_what_breaks_the_rules(app, world):
    route_sms(app, "FR", sender="INFO", promotional_sender="36180")
    route_sms(app, "NL", sender="Kliniek")
    with app.app_context(), system_scope():
        routing.set_route("FR", "twilio_sms", 1, 100)
        routing.set_route("NL", "twilio_sms", 1, 100)
        fr = host().pm.get_plugin("fr").relais_country_warnings(country_code="FR")
        nl = host().pm.get_plugin("nl").relais_country_warnings(country_code="NL")
    assert any("INFO is generic" in w for w in fr)
    assert nl == [
        "twilio_sms: patients cannot reply to Kliniek (OUI, STOP): two-way SMS needs a short "
        "code or a long number."
    ]


# --- locale, retention, staff ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "numbers"),
    [("DE", ["112", "116117"]), ("IT", ["118", "112"]), ("NL", ["112"]), ("FR", ["15", "112"])],
)
def test_each_country_shows_its_emergency_numbers(app, world, code, numbers):
    clinics, _ = world
    client = client_for(app, clinics[code].slug)
    log_in(client, make_staff(app, clinics[code], "secretary"))
    footer = client.get("/").text.split("<footer>")[1]
    assert [
        n for n in ("15", "112", "116117", "118") if f"<strong>{n}</strong>" in footer
    ] == sorted(numbers, key=("15", "112", "116117", "118").index)


def test_retention_follows_the_country_setting(app, world):
    with app.app_context(), system_scope():
        italy = host().pm.get_plugin("it").relais_retention_policy(country_code="IT")
        settings.save("NL", "nl", {"content_retention_days": "30"})
        db.session.commit()
        netherlands = host().pm.get_plugin("nl").relais_retention_policy(country_code="NL")
    assert (italy.contents.days, italy.records.days) == (365, 730)
    assert (netherlands.contents.days, netherlands.records.days) == (30, 3 * 365)


def test_staff_read_a_deferral_in_plain_words(app, world):
    clinics, patients = world
    waits = send(app, clinics["FR"], patients["FR"], local("FR", "2026-03-28 20:00"))
    staff = client_for(app, clinics["FR"].slug)
    log_in(staff, make_staff(app, clinics["FR"], "secretary"))
    staff.post("/language", data={"lang": "en", "csrf_token": csrf_token(staff, "/")})
    page = staff.get(f"/messages/{waits.id}").text
    assert (
        "Deferred to Monday, March 30, 2026, 08:00: quiet hours in France; STOP mention added"
        in page
    )


def test_campaign_emails_end_with_an_opt_out_link(app, world):
    clinics, _ = world
    amsterdam = clinics["NL"]
    daan = make_patient(app, amsterdam, first_name="Daan", email="daan@example.nl")
    with app.app_context(), tenant_scope(amsterdam.id):
        who = db.session.get(Patient, (amsterdam.id, daan.id))
        consent.record(who, "email", ConsentAction.GIVEN, ConsentMethod.FORM, "patient")
        db.session.commit()
    message = send(app, amsterdam, daan, local("NL", "2026-11-24 10:00"), channels=("email",))
    text, link = message.content["text"].rsplit(": ", 1)
    assert text == f"{CAMPAIGN}\n\nOm deze berichten te stoppen"  # Daan reads Dutch
    with app.test_request_context(), tenant_scope(amsterdam.id):
        token = link.rsplit("/", 1)[1]
        patient, channel, action = consent.read_link(amsterdam, token)
    assert (patient.id, channel, action) == (daan.id, "email", ConsentAction.WITHDRAWN)
