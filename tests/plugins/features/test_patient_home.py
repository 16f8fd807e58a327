"""The patient's home page (``/me/``): coming appointments to confirm or cancel, their
conversations with unread answers first, their consent per channel to change, and the cards
plugins add (``relais_patient_home_cards``)."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic.models import AuditEvent, Consent, Patient
from core.db import db, utcnow
from plugins.features import appointments
from tenants.scoping import tenant_scope
from tests.plugins.features.messaging_world import (
    make_doctor,
    make_patient_of,
    patient_browser,
    post,
    staff_browser,
)
from tests.worlds import client_for, make_clinic

PLUGINS = ("fr", "appointments", "messaging", "outbox")


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


@pytest.fixture
def doctor(app, clinic):
    return make_doctor(app, clinic, "dr.martin")


@pytest.fixture
def patient(app, clinic, doctor):
    return make_patient_of(app, clinic, [doctor], language="en", email="jeanne@example.org")


@pytest.fixture
def me(app, clinic, patient):
    return patient_browser(app, clinic, patient)


def book(app, clinic, patient, doctor, days=3.0):
    with app.app_context(), tenant_scope(clinic.id):
        appointment = appointments.create(
            clinic,
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": (utcnow() + timedelta(days=days)).replace(microsecond=0).isoformat(),
                "duration_minutes": 30,
            },
        )
        db.session.commit()
        return appointment.id


def status_of(app, clinic, appointment_id) -> str:
    with app.app_context(), tenant_scope(clinic.id):
        return str(appointments.find(appointment_id).status)


def test_a_patient_confirms_then_cancels_a_coming_appointment(app, clinic, doctor, patient, me):
    appointment_id = book(app, clinic, patient, doctor)
    home = me.get("/me/")
    assert "Your coming appointments" in home.text and "with Practitioner demo" in home.text
    assert "To confirm" in home.text
    confirm = f"/me/appointments/{appointment_id}/confirm"
    assert f'action="{confirm}"' in home.text

    done = post(me, confirm, form_page="/me/")
    assert done.status_code == 303 and done.headers["Location"].endswith("/me/")
    home = me.get("/me/")
    assert "your appointment of" in home.text and "is confirmed" in home.text
    assert status_of(app, clinic, appointment_id) == "confirmed"
    assert f'action="{confirm}"' not in home.text  # nothing left to confirm

    cancelled = post(me, f"/me/appointments/{appointment_id}/cancel", form_page="/me/")
    assert cancelled.status_code == 303
    assert status_of(app, clinic, appointment_id) == "cancelled"
    assert "No appointment to come." in me.get("/me/").text


def test_another_patients_or_a_past_appointment_cannot_be_changed(app, clinic, doctor, patient, me):
    other = make_patient_of(app, clinic, [doctor], first_name="Paul", phone="0622334455")
    theirs = book(app, clinic, other, doctor)
    refused = post(me, f"/me/appointments/{theirs}/cancel", form_page="/me/")
    assert refused.status_code == 404
    assert status_of(app, clinic, theirs) == "booked"

    past = book(app, clinic, patient, doctor, days=1 / 24)  # in an hour
    with time_machine.travel(utcnow() + timedelta(hours=2), tick=False):
        later = patient_browser(app, clinic, patient)
        assert post(later, f"/me/appointments/{past}/confirm", form_page="/me/").status_code == 404
        assert "No appointment to come." in later.get("/me/").text
    assert status_of(app, clinic, past) == "booked"

    stranger = client_for(app, clinic.slug)  # no patient session: nothing happens
    mine = book(app, clinic, patient, doctor, days=5)
    assert stranger.post(f"/me/appointments/{mine}/cancel").status_code in (400, 401)
    assert status_of(app, clinic, mine) == "booked"


def test_conversations_with_an_unread_answer_come_first(app, clinic, doctor, patient, me):
    staff = staff_browser(app, clinic, doctor)
    first = post(me, "/me/messages/", practitioner=str(doctor.id), body="Première demande")
    with app.app_context(), tenant_scope(clinic.id):  # a second one, answered tomorrow
        db.session.execute(sa.text("UPDATE messaging_conversations SET answered_at = NULL"))
        db.session.commit()
    second = post(me, "/me/messages/", practitioner=str(doctor.id), body="Seconde demande")
    assert first.status_code == second.status_code == 303
    older = first.headers["Location"].rsplit("/", 1)[1]
    newer = second.headers["Location"].rsplit("/", 1)[1]
    home = me.get("/me/").text
    assert "Your messages" in home and "New message" not in home
    assert home.index(newer) < home.index(older)  # newest first

    path = f"/inbox/{older}"
    answered = post(staff, f"{path}/reply", form_page=path, body="Voici", reply_mode="none")
    assert answered.status_code == 303
    home = me.get("/me/").text
    assert "New message" in home
    assert home.index(older) < home.index(newer)  # the unread answer first
    assert '<span class="figure">1</span> Your messages' in home

    me.get(f"/me/messages/{older}")  # read
    assert "New message" not in me.get("/me/").text


def test_a_patient_changes_their_consent_per_channel(app, clinic, patient, me):
    home = me.get("/me/").text
    assert "News and campaigns from your clinic" in home
    assert home.count("You do not receive them") == 3  # SMS, e-mail, a call: no push device
    given = post(me, "/me/consents?channel=email&action=given", form_page="/me/")
    assert given.status_code == 303
    home = me.get("/me/").text
    assert "You will receive news and campaigns from Clinic demo by e-mail." in home
    assert "You receive them" in home
    stopped = post(me, "/me/consents?channel=email&action=withdrawn", form_page="/me/")
    assert stopped.status_code == 303
    home = me.get("/me/").text
    assert "You will no longer receive news and campaigns from Clinic demo by e-mail." in home
    with app.app_context(), tenant_scope(clinic.id):
        steps = db.session.execute(
            sa.select(Consent.action, Consent.method, Consent.actor).order_by(Consent.at)
        ).all()
        audited = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.actor == "patient")
        ).all()
    assert [(str(a), str(m), who) for a, m, who in steps] == [
        ("given", "form", "patient"),
        ("withdrawn", "form", "patient"),
    ]
    assert audited == ["consent.given", "consent.withdrawn"]
    assert post(me, "/me/consents?channel=fax&action=given", form_page="/me/").status_code == 404


def test_a_french_patient_reads_the_cards_in_french(app, clinic, doctor):
    french = make_patient_of(app, clinic, [doctor], first_name="Louise", phone="0611223344")
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.get(Patient, (clinic.id, french.id)).language == "fr"
    book(app, clinic, french, doctor)
    home = patient_browser(app, clinic, french).get("/me/").text
    assert "Vos prochains rendez-vous" in home and "Confirmer" in home
    assert "Vos messages" in home
