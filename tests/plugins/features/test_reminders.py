"""Reminders: scheduled from appointment changes in the outbox, by the patient's best
channel, in their language; answered by reply or by link; with an .ics invitation, a preview
for admins and figures for staff. The end of the module runs a real worker against the
loopback Twilio: a reminder due in seconds reaches it, the reply OUI confirms."""

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine
from flask_babel import force_locale, gettext
from icalendar import Calendar

from core.clinic import apikeys, settings
from core.clinic.models import Patient
from core.db import db
from core.delivery import receipts, sms, sweeper
from core.delivery.models import InboundMessage, Message, MessageStatus
from core.delivery.providers import Inbound
from core.errors import ValidationError
from plugins.channels.webpush.subscriptions import PushSubscription
from plugins.features import appointments
from plugins.features.reminders import links
from plugins.features.reminders.models import Reminder
from tenants.scoping import tenant_scope
from tests.worlds import client_for, csrf_token, log_in, make_clinic, make_patient, make_staff


def french(app, message: str, **variables) -> str:
    """What a French clinic's pages say, in its catalog."""
    with app.test_request_context(), force_locale("fr"):
        return gettext(message, **variables)


PARIS = ZoneInfo("Europe/Paris")
PLUGINS = ("fr", "appointments", "reminders", "outbox", "webpush")
NOW = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)  # a Friday, before the clocks change
LANDLINE = "+33142685300"


def paris(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=PARIS)


# --- the world --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


@pytest.fixture
def doctor(app, clinic):
    return make_staff(app, clinic, "practitioner", email="dr.martin@demo.example")


@pytest.fixture
def patient(app, clinic):
    return make_patient(app, clinic, language="fr")


def book(app, clinic, patient, doctor, starts_at, **data) -> uuid.UUID:
    with app.app_context(), tenant_scope(clinic.id):
        appointment = appointments.create(
            clinic,
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": starts_at.isoformat(),
                "duration_minutes": 30,
                **data,
            },
        )
        db.session.commit()
        return appointment.id


def change(app, clinic, appointment_id, action, *args):
    """Call a domain function of appointments (move, cancel, set_status) and commit."""
    with app.app_context(), tenant_scope(clinic.id):
        appointment = appointments.find(appointment_id)
        getattr(appointments, action)(clinic, appointment, *args)
        db.session.commit()


def reminders(app, clinic, appointment_id) -> list[dict]:
    """The appointment's reminders, earliest first, as the outbox holds them."""
    with app.app_context(), tenant_scope(clinic.id):
        rows = db.session.execute(
            sa.select(Reminder.minutes_before, Message)
            .join(Message, Message.id == Reminder.message_id)
            .where(Reminder.appointment_id == appointment_id)
            .order_by(Message.created_at, Reminder.minutes_before.desc())
        ).all()
        return [
            {
                "minutes": minutes,
                "id": m.id,
                "status": m.status,
                "not_before": m.not_before,
                "expires_at": m.expires_at,
                "channels": list(m.channels),
                "text": m.content["text"],
                "subject": m.content.get("subject"),
            }
            for minutes, m in rows
        ]


def other_messages(app, clinic, patient) -> list[Message]:
    """The patient's messages that are not reminders (confirmations, cancellations)."""
    with app.app_context(), tenant_scope(clinic.id):
        found = list(
            db.session.scalars(
                sa.select(Message)
                .where(
                    Message.patient_id == patient.id,
                    Message.id.not_in(sa.select(Reminder.message_id)),
                )
                .order_by(Message.created_at)
            )
        )
        for message in found:
            db.session.expunge(message)
        return found


def status_of(app, clinic, appointment_id) -> str:
    with app.app_context(), tenant_scope(clinic.id):
        return appointments.find(appointment_id).status.value


def save(app, clinic, **values):
    with app.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "reminders", values)
        db.session.commit()


# --- scheduling -------------------------------------------------------------------------------


def test_three_reminders_wait_in_the_outbox_until_72h_24h_and_2h_before(
    app, clinic, doctor, patient
):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    found = reminders(app, clinic, appointment_id)
    start = paris(3, 30, 9).astimezone(UTC)
    assert [(r["minutes"], r["not_before"], r["expires_at"]) for r in found] == [
        (72 * 60, start - timedelta(hours=72), start),
        (24 * 60, start - timedelta(hours=24), start),
        (2 * 60, start - timedelta(hours=2), start),
    ]
    assert {r["status"] for r in found} == {MessageStatus.SCHEDULED}
    assert "lundi 30 mars 2026 à 09:00" in found[0]["text"]
    assert "Répondez OUI pour confirmer, NON pour annuler" in found[0]["text"]


def test_times_already_past_get_no_reminder(app, clinic, doctor, patient):
    appointment_id = book(app, clinic, patient, doctor, NOW + timedelta(hours=25))

    assert [r["minutes"] for r in reminders(app, clinic, appointment_id)] == [24 * 60, 120]


def test_an_appointment_type_may_have_its_own_schedule(app, clinic, doctor, patient):
    save(app, clinic, schedule="24h", schedule_by_type="vaccination: 48h, 2h")

    vaccination = book(app, clinic, patient, doctor, paris(3, 30, 9), type="vaccination")
    consultation = book(app, clinic, patient, doctor, paris(3, 30, 10), type="consultation")

    assert [r["minutes"] for r in reminders(app, clinic, vaccination)] == [48 * 60, 120]
    assert [r["minutes"] for r in reminders(app, clinic, consultation)] == [24 * 60]


def test_a_move_cancels_the_waiting_reminders_and_schedules_new_ones(app, clinic, doctor, patient):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        change(app, clinic, appointment_id, "move", paris(4, 2, 15).isoformat())

    found = reminders(app, clinic, appointment_id)
    old, new = found[:3], found[3:]
    assert {r["status"] for r in old} == {MessageStatus.CANCELLED}
    start = paris(4, 2, 15).astimezone(UTC)
    assert [(r["status"], r["not_before"], r["expires_at"]) for r in new] == [
        (MessageStatus.SCHEDULED, start - timedelta(hours=h), start) for h in (72, 24, 2)
    ]
    assert "jeudi 2 avril 2026 à 15:00" in new[0]["text"]


def test_a_cancellation_cancels_the_reminders_and_tells_the_patient(app, clinic, doctor):
    patient = make_patient(app, clinic, language="en")
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    change(app, clinic, appointment_id, "cancel")

    assert {r["status"] for r in reminders(app, clinic, appointment_id)} == {
        MessageStatus.CANCELLED
    }
    [notice] = other_messages(app, clinic, patient)
    assert notice.purpose == "transactional"
    assert notice.channels == ["sms"]
    assert notice.content["text"] == (
        "Clinic demo: your appointment on Monday, March 30, 2026 at 09:00 is cancelled."
    )


def test_a_clinic_may_choose_not_to_tell_patients_of_cancellations(app, clinic, doctor, patient):
    save(app, clinic, notify_cancellation="no")
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    change(app, clinic, appointment_id, "cancel")

    assert other_messages(app, clinic, patient) == []


@pytest.mark.parametrize("status", ["no_show", "done"])
def test_an_appointment_marked_done_or_no_show_gets_no_more_reminders(
    app, clinic, doctor, patient, status
):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    change(app, clinic, appointment_id, "set_status", status)

    assert {r["status"] for r in reminders(app, clinic, appointment_id)} == {
        MessageStatus.CANCELLED
    }
    assert other_messages(app, clinic, patient) == []


def test_a_confirmed_appointment_keeps_its_reminders(app, clinic, doctor, patient):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    change(app, clinic, appointment_id, "set_status", "confirmed")

    assert [r["status"] for r in reminders(app, clinic, appointment_id)] == [
        MessageStatus.SCHEDULED
    ] * 3


# --- the best channel -------------------------------------------------------------------------


def subscribe(app, clinic, patient):
    with app.app_context(), tenant_scope(clinic.id):
        db.session.add(
            PushSubscription(
                tenant_id=clinic.id,
                patient_id=patient.id,
                endpoint="https://push.example/abc",
                p256dh="BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                auth="tBHItJI5svbpez7KI4CCXg",
                device="Firefox",
            )
        )
        db.session.commit()


@pytest.mark.parametrize(
    ("data", "push", "plan"),
    [
        ({"email": "jeanne@example.org"}, True, ["push", "email", "sms"]),
        ({"email": "jeanne@example.org"}, False, ["email", "sms"]),
        ({}, False, ["sms"]),
        ({"phone": LANDLINE}, False, ["voice"]),
        ({"phone": LANDLINE, "email": "jeanne@example.org"}, False, ["email", "voice"]),
    ],
)
def test_reminders_go_by_the_patients_best_channels_first(app, clinic, doctor, data, push, plan):
    patient = make_patient(app, clinic, **data)
    if push:
        subscribe(app, clinic, patient)

    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    assert {tuple(r["channels"]) for r in reminders(app, clinic, appointment_id)} == {tuple(plan)}


def test_a_patient_who_cannot_be_reached_gets_no_reminder(app, clinic, doctor):
    patient = make_patient(app, clinic, phone="")
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))
    assert reminders(app, clinic, appointment_id) == []


# --- templates, languages, clocks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", "RDV le lundi 30 mars 2026 à 09:00 avec Practitioner demo"),
        ("en", "is on Monday, March 30, 2026 at 09:00 (Clinic demo). Reply YES to confirm"),
        ("de", "Montag, 30. März 2026 um 09:00 (Clinic demo). Antworten Sie JA"),
        ("it", "lunedì 30 marzo 2026 alle 09:00 (Clinic demo). Risponda SI per confermare"),
        ("nl", "maandag 30 maart 2026 om 09:00 (Clinic demo). Antwoord JA om te bevestigen"),
    ],
)
def test_the_patients_language_chooses_the_template(app, clinic, doctor, language, expected):
    patient = make_patient(app, clinic, language=language)
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))
    text = reminders(app, clinic, appointment_id)[0]["text"]
    assert expected in text
    assert re.search(r"https?://demo\.relais\.test/appointments/r/\S+$", text)


def test_a_clinic_writes_its_own_template(app, clinic, doctor, patient):
    save(app, clinic, template_fr="{{ clinic }} : RDV {{ date }} {{ time }}, {{ address }}.")
    with app.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "appointments", {"address": "3 rue des Lilas, Lyon"})
        db.session.commit()

    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))

    assert reminders(app, clinic, appointment_id)[0]["text"] == (
        "Clinic demo : RDV lundi 30 mars 2026 09:00, 3 rue des Lilas, Lyon."
    )


def test_the_time_reads_09_00_after_the_clocks_go_forward_and_back(app, clinic, doctor, patient):
    march = book(app, clinic, patient, doctor, paris(3, 30, 9))  # after Sunday 29 March
    with time_machine.travel(datetime(2026, 10, 20, 8, tzinfo=UTC), tick=False):
        october = book(app, clinic, patient, doctor, paris(10, 26, 9))  # after Sunday 25 October

    in_march = reminders(app, clinic, march)
    in_october = reminders(app, clinic, october)
    assert "lundi 30 mars 2026 à 09:00" in in_march[0]["text"]
    assert "lundi 26 octobre 2026 à 09:00" in in_october[0]["text"]
    # 72 h before is 72 real hours, across the change: 08:00 on Friday in March (winter
    # time then), 10:00 on Friday in October (summer time then).
    assert in_march[0]["not_before"] == datetime(2026, 3, 27, 7, tzinfo=UTC)
    assert in_october[0]["not_before"] == datetime(2026, 10, 23, 8, tzinfo=UTC)
    assert in_october[0]["expires_at"] == datetime(2026, 10, 26, 8, tzinfo=UTC)


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field", "problem"),
    [
        ({"schedule": "72h, 48h, 24h, 2h, 30m"}, "schedule", "at most 4 reminders"),
        ({"schedule": "24h, 0h"}, "schedule", "not 0h"),
        ({"schedule": "24h, 1440m"}, "schedule", "given twice"),
        ({"schedule": "-2h"}, "schedule", "is not a time before the appointment"),
        ({"schedule": "tomorrow"}, "schedule", "is not a time before the appointment"),
        ({"schedule_by_type": "vaccination 48h"}, "schedule_by_type", "a colon"),
        ({"schedule_by_type": "a: 2h; a: 3h"}, "schedule_by_type", "given twice"),
        ({"notify_cancellation": "maybe"}, "notify_cancellation", "Yes or no"),
        ({"template_en": "Hello {{ patient"}, "template_en", "cannot be rendered"),
        (
            {"template_fr": "Bonjour {{ prenom }}, {{ date }} {{ heure }}"},
            "template_fr",
            "Unknown variables: {{ heure }}, {{ prenom }}.",
        ),
    ],
)
def test_settings_that_make_no_sense_are_refused_with_a_sentence(
    app, clinic, values, field, problem
):
    with app.app_context(), tenant_scope(clinic.id), pytest.raises(ValidationError) as refused:
        settings.save_clinic(clinic, "reminders", values)
    assert refused.value.field == field
    assert problem in refused.value.message


def test_schedules_are_kept_in_a_normal_form(app, clinic):
    save(app, clinic, schedule="30m,2H, 3d", schedule_by_type="Vaccination : 48h ; rappel: 1d")
    with app.app_context(), tenant_scope(clinic.id):
        assert settings.plugin_setting(clinic, "reminders", "schedule") == "72h, 2h, 30m"
        assert (
            settings.plugin_setting(clinic, "reminders", "schedule_by_type")
            == "vaccination: 48h; rappel: 24h"
        )


# --- the admins' page -------------------------------------------------------------------------


@pytest.fixture
def admin_browser(app, clinic):
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    return client


def test_the_preview_shows_the_text_by_channel_with_its_sms_count(app, clinic, admin_browser):
    page = admin_browser.get("/settings/reminders?language=fr")

    assert page.status_code == 200
    sms_text = re.search(r'<pre id="preview-sms">(.*?)</pre>', page.text, re.S).group(1)
    assert "Bonjour Jeanne, RDV le lundi" in sms_text and "à 09:00 avec Dr Martin" in sms_text
    encoding, count = sms.segments(sms_text.replace("&#39;", "'"))
    assert f"{count} SMS ({encoding}" in page.text
    assert "Rappel : votre rendez-vous du lundi" in page.text  # the e-mail's subject
    assert 'id="preview-voice"' in page.text


def test_templates_are_text_with_a_button_per_variable(app, clinic, admin_browser):
    page = admin_browser.get("/settings/reminders").text
    textareas = re.findall(r'<textarea id="f-template_(\w+)"[^>]*>(.*?)</textarea>', page, re.S)
    assert [code for code, _text in textareas] == ["fr", "de", "it", "nl", "en"]
    assert all("{%" not in text for _code, text in textareas)  # no template logic to read
    # {{ place }}: the clinic's name and its address (the sample's, where it has none).
    assert "avec Dr Martin (Clinic demo, 3 rue des Lilas). R" in page
    group = re.search(
        r"<div class=\"inserts\"[^>]*data-for=\"f-template_fr\" hidden>(.*?)</div>", page, re.S
    )
    inserted = re.findall(r'data-insert="([^"]+)"', group.group(1))
    assert inserted == [
        "{{ patient }}",
        "{{ date }}",
        "{{ time }}",
        "{{ practitioner }}",
        "{{ place }}",
        "{{ clinic }}",
        "{{ address }}",
        "{{ link }}",
    ]


def test_an_admin_previews_an_unsaved_template_as_json(app, clinic, admin_browser):
    token = csrf_token(admin_browser, "/settings/reminders")
    answer = admin_browser.post(
        "/settings/reminders",
        data={
            "csrf_token": token,
            "action": "preview",
            "language": "en",
            "template_en": "{{ clinic }}: {{ date }} {{ time }} — see you! 😀",
        },
        headers={"Accept": "application/json"},
    )

    assert answer.status_code == 200
    shown = answer.json
    text = shown["sms"]["text"]
    assert text.startswith("Clinic demo: Monday, ") and text.endswith("09:00 — see you! 😀")
    assert (shown["sms"]["encoding"], shown["sms"]["segments"]) == ("UCS-2", 1)
    assert shown["email"]["subject"].startswith("Reminder: your appointment on Monday")
    assert shown["voice"]["text"] == text
    assert shown["sms_summary"] == f"1 SMS (UCS-2, {len(text)} caractères)"  # the page's words
    with app.app_context(), tenant_scope(clinic.id):  # a preview saves nothing
        assert "template_en" not in settings.clinic_values(clinic, "reminders")


def test_an_admin_saves_the_schedule_and_a_mistake_comes_back_with_its_sentence(
    app, clinic, admin_browser
):
    token = csrf_token(admin_browser, "/settings/reminders")
    refused = admin_browser.post(
        "/settings/reminders",
        data={"csrf_token": token, "action": "save", "schedule": "1h, 2h, 3h, 4h, 5h"},
    )
    assert refused.status_code == 422
    assert french(app, "at most %(n)d reminders per appointment", n=4) in refused.text

    saved = admin_browser.post(
        "/settings/reminders",
        data={"csrf_token": token, "action": "save", "schedule": "48h, 1h"},
    )
    assert saved.status_code == 303
    with app.app_context(), tenant_scope(clinic.id):
        assert settings.plugin_setting(clinic, "reminders", "schedule") == "48h, 1h"


def test_only_admins_see_the_reminders_settings(app, clinic):
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "secretary"))
    assert client.get("/settings/reminders").status_code == 403
    assert 'href="/reminders/stats"' in client.get("/").text


# --- replies ----------------------------------------------------------------------------------


def send_due(app, clinic, appointment_id):
    """The appointment's first reminder is due and the worker's job sends it (the outbox
    channel plugin, loopback)."""
    first = reminders(app, clinic, appointment_id)[0]
    due = first["not_before"] + timedelta(seconds=1)
    with time_machine.travel(due, tick=False), app.app_context():
        sweeper.sweep()
        sweeper.deliver_due_in_process()
    assert reminders(app, clinic, appointment_id)[0]["status"] == MessageStatus.SENT


def reply(app, clinic, patient, text) -> str | None:
    """A patient's SMS reply, kept and handed to the features as the webhooks do."""
    with app.app_context(), tenant_scope(clinic.id):
        row = receipts.keep_inbound(
            clinic,
            patient.id,
            "outbox",
            "sms",
            Inbound(sender=patient.phone, recipient="+33939030101", text=text, at=NOW),
        )
        db.session.commit()
        return row.handled_by


@pytest.mark.parametrize(
    ("language", "word", "status"),
    [
        ("fr", "OUI", "confirmed"),
        ("fr", " non. ", "cancelled"),
        ("en", "Yes", "confirmed"),
        ("en", "NO", "cancelled"),
        ("de", "ja", "confirmed"),
        ("de", "NEIN", "cancelled"),
        ("it", "Sì", "confirmed"),
        ("it", "no", "cancelled"),
        ("nl", "JA", "confirmed"),
        ("nl", "Nee", "cancelled"),
    ],
)
def test_a_reply_confirms_or_cancels_the_next_reminded_appointment(
    app, clinic, doctor, language, word, status
):
    patient = make_patient(app, clinic, language=language)
    later = book(app, clinic, patient, doctor, paris(4, 20, 9))  # no reminder sent yet
    reminded = book(app, clinic, patient, doctor, paris(3, 30, 9))
    send_due(app, clinic, reminded)

    handled = reply(app, clinic, patient, word)

    assert handled.startswith(f"appointment {status}")
    assert status_of(app, clinic, reminded) == status
    assert status_of(app, clinic, later) == "booked"


def test_other_words_and_replies_without_a_reminder_are_left_alone(app, clinic, doctor, patient):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))
    assert reply(app, clinic, patient, "OUI") is None  # no reminder has left yet
    send_due(app, clinic, appointment_id)

    assert reply(app, clinic, patient, "Merci, à lundi") is None
    assert reply(app, clinic, patient, "STOP").startswith("opt-out")  # the country's rules
    assert status_of(app, clinic, appointment_id) == "booked"
    with app.app_context(), tenant_scope(clinic.id):
        kept = db.session.scalars(sa.select(InboundMessage.text)).all()
    assert sorted(kept) == ["Merci, à lundi", "OUI", "STOP"]


# --- the link ---------------------------------------------------------------------------------


def link_path(app, clinic, appointment_id) -> str:
    text = reminders(app, clinic, appointment_id)[0]["text"]
    return re.search(r"https?://demo\.relais\.test(/appointments/r/\S+)$", text).group(1)


@pytest.mark.parametrize(("button", "status"), [("confirm", "confirmed"), ("cancel", "cancelled")])
def test_the_link_opens_a_page_that_confirms_or_cancels(
    app, clinic, doctor, patient, button, status
):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))
    path = link_path(app, clinic, appointment_id)
    browser = client_for(app, clinic.slug)

    page = browser.get(path)
    assert page.status_code == 200
    assert "Practitioner demo" in page.text and "09:00" in page.text
    assert status_of(app, clinic, appointment_id) == "booked"  # a link preview changes nothing

    done = browser.post(path, data={"csrf_token": csrf_token(browser, path), "answer": button})
    assert done.status_code == 303
    assert status_of(app, clinic, appointment_id) == status
    after = browser.get(path)
    said = "Appointment confirmed" if button == "confirm" else "Appointment cancelled"
    assert french(app, said) in after.text


def test_the_link_needs_the_pages_csrf_token(app, clinic, doctor, patient):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))
    path = link_path(app, clinic, appointment_id)
    answer = client_for(app, clinic.slug).post(path, data={"answer": "cancel"})
    assert answer.status_code == 400
    assert status_of(app, clinic, appointment_id) == "booked"


def test_a_bad_or_foreign_or_late_link_is_404(app, clinic, doctor, patient):
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9))
    path = link_path(app, clinic, appointment_id)
    browser = client_for(app, clinic.slug)
    assert browser.get(path[:-3] + "xyz").status_code == 404
    other = make_clinic(app, "other", plugins=PLUGINS)
    assert client_for(app, other.slug).get(path).status_code == 404
    with time_machine.travel(paris(3, 30, 9, 1), tick=False):
        late = client_for(app, clinic.slug).get(path)
    assert late.status_code == 404
    assert french(app, "This appointment has started: this link no longer works.") in late.text


# --- the .ics invitation ----------------------------------------------------------------------


def calendar_of(message: Message) -> Calendar:
    [attachment] = message.content["attachments"]
    assert (attachment["filename"], attachment["mime_type"]) == ("rendez-vous.ics", "text/calendar")
    return Calendar.from_ical(base64.b64decode(attachment["data"]))


def test_an_e_mail_carries_the_appointment_as_an_ics_invitation(app, clinic, doctor):
    patient = make_patient(app, clinic, language="en", email="jane@example.org")
    appointment_id = book(app, clinic, patient, doctor, paris(3, 30, 9), location="3 rue des Lilas")

    [invitation] = other_messages(app, clinic, patient)
    assert invitation.channels == ["email"] and invitation.purpose == "transactional"
    assert invitation.content["subject"] == "Your appointment on Monday, March 30, 2026 at 09:00"
    calendar = calendar_of(invitation)
    assert calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == datetime(2026, 3, 30, 7, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)
    assert str(event["LOCATION"]) == "3 rue des Lilas"
    assert str(event["SUMMARY"]) == "Appointment at Clinic demo"
    assert event["ORGANIZER"].params["CN"] == "Clinic demo"
    assert str(event["UID"]) == f"appointment-{appointment_id}@relais"
    first_sequence = event.decoded("SEQUENCE")

    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        change(app, clinic, appointment_id, "move", paris(3, 31, 14).isoformat())
    moved = calendar_of(other_messages(app, clinic, patient)[-1])
    [event] = moved.walk("VEVENT")
    assert str(event["UID"]) == f"appointment-{appointment_id}@relais"
    assert event.decoded("DTSTART") == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert event.decoded("SEQUENCE") > first_sequence

    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        change(app, clinic, appointment_id, "cancel")
    notice = other_messages(app, clinic, patient)[-1]
    assert "is cancelled" in notice.content["text"]
    cancelled = calendar_of(notice)
    assert cancelled["METHOD"] == "CANCEL"
    [event] = cancelled.walk("VEVENT")
    assert str(event["UID"]) == f"appointment-{appointment_id}@relais"


def test_no_invitation_without_an_e_mail_address(app, clinic, doctor, patient):
    book(app, clinic, patient, doctor, paris(3, 30, 9))
    assert other_messages(app, clinic, patient) == []


# --- figures ----------------------------------------------------------------------------------


def mark_sent(app, clinic, message_id, channel_index=0, at=None):
    with app.app_context(), tenant_scope(clinic.id):
        message = db.session.get(Message, (clinic.id, message_id))
        message.status, message.sent_at = MessageStatus.SENT, at or NOW
        message.channel_index = channel_index
        db.session.commit()


def test_figures_count_channels_confirmations_and_no_shows(app, clinic, doctor):
    sms_patient = make_patient(app, clinic)
    mail_patient = make_patient(app, clinic, email="j@example.org", phone="")
    # Four appointments reminded (two confirmed), three not; then the week goes by.
    reminded = [book(app, clinic, sms_patient, doctor, paris(3, 23, h)) for h in (9, 10, 11)] + [
        book(app, clinic, mail_patient, doctor, paris(3, 23, 14))
    ]
    plain = [book(app, clinic, sms_patient, doctor, paris(3, 24, h)) for h in (9, 10, 11)]
    for appointment_id in reminded:
        for reminder in reminders(app, clinic, appointment_id)[-1:]:  # the 2 h one
            mark_sent(app, clinic, reminder["id"], at=NOW + timedelta(days=2))
    with app.app_context(), tenant_scope(clinic.id):
        db.session.execute(
            sa.update(Message)
            .where(
                Message.id.in_(
                    sa.select(Reminder.message_id).where(Reminder.appointment_id.in_(plain))
                )
            )
            .values(status=MessageStatus.CANCELLED)
        )
        db.session.commit()
    change(app, clinic, reminded[0], "set_status", "confirmed")
    change(app, clinic, reminded[1], "set_status", "confirmed")
    with time_machine.travel(datetime(2026, 3, 26, 8, tzinfo=UTC), tick=False):
        change(app, clinic, reminded[0], "set_status", "done")  # confirmed, then came
        change(app, clinic, reminded[2], "set_status", "no_show")
        change(app, clinic, reminded[3], "set_status", "done")
        change(app, clinic, plain[0], "set_status", "no_show")
        change(app, clinic, plain[1], "set_status", "no_show")
        change(app, clinic, plain[2], "set_status", "done")

        with app.app_context(), tenant_scope(clinic.id):
            _key, key = apikeys.create_key("stats")
            db.session.commit()
        api = client_for(app, clinic.slug)
        answer = api.get(
            "/api/v1/reminders/stats?from=2026-03-16&to=2026-03-30",
            headers={"Authorization": f"Bearer {key}"},
        )
        staff = client_for(app, clinic.slug)
        log_in(staff, make_staff(app, clinic, "secretary"))
        page = staff.get("/reminders/stats?from=2026-03-16&to=2026-03-30")

    assert answer.status_code == 200, answer.text
    figures = answer.json
    assert figures["sent_by_channel"] == {"email": 1, "sms": 3}
    assert (figures["appointments_reminded"], figures["appointments_confirmed"]) == (4, 1)
    assert figures["confirmation_rate"] == 0.25
    assert figures["with_reminders"] == {"done": 2, "no_show": 1, "no_show_rate": 0.3333}
    assert figures["without_reminders"] == {"done": 1, "no_show": 2, "no_show_rate": 0.6667}
    assert page.status_code == 200
    confirmed = (
        "%(confirmed)d of %(reminded)d reminded appointments confirmed by the patient: %(rate)s"
    )
    assert french(app, confirmed, confirmed=1, reminded=4, rate="25\u00a0%") in page.text
    assert re.search(rf"{french(app, 'With reminders')}</span>.*?33\u00a0%", page.text, re.S)
    assert re.search(rf"{french(app, 'Without reminders')}</span>.*?67\u00a0%", page.text, re.S)


def test_the_figures_api_needs_a_key_and_a_sensible_window(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _key, key = apikeys.create_key("stats")
        db.session.commit()
    api = client_for(app, clinic.slug)
    assert api.get("/api/v1/reminders/stats").status_code == 401
    bad = api.get(
        "/api/v1/reminders/stats?from=2026-03-30&to=2026-03-01",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert bad.status_code == 422
    assert bad.json["error"]["field"] == "to"


def test_links_are_signed_per_clinic(app, clinic):
    other = make_clinic(app, "other", plugins=PLUGINS)
    appointment_id = uuid.uuid4()
    with app.test_request_context():
        token = links.token(clinic, appointment_id)
        assert token != links.token(other, appointment_id)
        assert len(token) < 60  # a short link: reminders fit in few SMS


def patient_row(app, clinic, patient) -> Patient:
    with app.app_context(), tenant_scope(clinic.id):
        row = db.session.get(Patient, (clinic.id, patient.id))
        db.session.expunge(row)
        return row


def test_operators_read_each_clinics_figures_on_the_command_line(app, clinic, runner):
    answer = runner.invoke(args=["reminders", "stats", "--country", "FR", "--days", "7"])
    assert answer.exit_code == 0, answer.output
    heading, row = answer.output.splitlines()[:2]
    assert heading.split()[:3] == ["clinic", "sent", "by"]
    assert row.split()[0] == clinic.slug
    refused = runner.invoke(args=["reminders", "stats", "--country", "ZZ"])
    assert refused.exit_code == 2
    assert "No clinic has the reminders feature enabled there." in refused.output
