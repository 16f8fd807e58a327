"""Messaging beside the agenda: a conversation started from an appointment ("Write to the
patient" on the agenda, through ``relais_appointment_actions``), and templates whose
appointment variables (date, time, reason) are filled in when used, in the reader's
language, from the appointment the appointments feature gives through
``relais_messaging_appointment``; a template naming a variable nobody fills is refused
when saved."""

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from babel.dates import format_date

from core.db import db, utcnow
from plugins.features import appointments
from plugins.features.messaging.models import Conversation
from tenants.scoping import tenant_scope
from tests.plugins.features.messaging_world import (
    audit_actions,
    make_doctor,
    make_patient_of,
    post,
    staff_browser,
)
from tests.worlds import make_clinic

PLUGINS = ("fr", "appointments", "messaging", "outbox")
PARIS = ZoneInfo("Europe/Paris")
TEXT = (
    "Hello {{ patient }}, about your appointment of {{ appointment_date }} at "
    "{{ appointment_time }} ({{ reason }}): please bring your vaccination record."
)


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


@pytest.fixture
def doctor(app, clinic):
    return make_doctor(app, clinic, "dr.martin")


@pytest.fixture
def patient(app, clinic, doctor):
    return make_patient_of(app, clinic, [doctor], language="en")


@pytest.fixture
def staff(app, clinic, doctor):
    return staff_browser(app, clinic, doctor)


def book(app, clinic, patient, doctor, day, at=time(9), reason="Flu vaccine"):
    with app.app_context(), tenant_scope(clinic.id):
        appointment = appointments.create(
            clinic,
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": datetime.combine(day, at, PARIS).isoformat(),
                "duration_minutes": 20,
                "reason": reason,
            },
        )
        db.session.commit()
        return appointment.id


def save_template(staff, body=TEXT) -> str:
    saved = post(staff, "/inbox/templates", title="Vaccination", body=body)
    assert saved.status_code == 303, saved.text
    listing = staff.get("/inbox/templates").text
    return re.search(r'/inbox/templates/([0-9a-f-]{36})">Vaccination', listing).group(1)


def test_an_unknown_variable_is_refused_naming_it(app, clinic, staff):
    refused = post(
        staff, "/inbox/templates", title="Typo", body="Hello {{ patient }} on {{ appointement }}"
    )
    assert refused.status_code == 422
    assert "Unknown variable: {{ appointement }}." in refused.text
    assert "{{ appointment_date }}" in refused.text  # what may be used, said with it
    assert "Typo" not in staff.get("/inbox/templates").text  # nothing saved


def test_writing_from_an_appointment_fills_its_date_time_and_reason(
    app, clinic, doctor, patient, staff
):
    day = (utcnow() + timedelta(days=3)).astimezone(PARIS).date()
    later = book(app, clinic, patient, doctor, day + timedelta(days=7), reason="Check-up")
    chosen = book(app, clinic, patient, doctor, day)
    template = save_template(staff)

    agenda = staff.get(f"/agenda?view=day&date={day.isoformat()}").text
    link = f"/inbox/new/{patient.id}?appointment_id={chosen}"
    assert f'href="{link}"' in agenda and "Write to the patient" in agenda

    written = staff.get(f"{link}&template={template}").text
    expected = (
        f"Hello Jeanne Durand, about your appointment of {format_date(day, 'full', 'en')} at "
        "09:00 (Flu vaccine): please bring your vaccination record."
    )
    assert f">{expected}</textarea>" in written
    assert ("messaging.appointment_read", str(chosen)) in audit_actions(app, clinic)

    sent = post(staff, link, form_page=link, body=expected, reply_mode="once")
    assert sent.status_code == 303
    conversation = sent.headers["Location"].rsplit("/", 1)[1]
    with app.app_context(), tenant_scope(clinic.id):
        started = db.session.scalar(sa.select(Conversation))
        assert started.about_appointment_id == chosen
    # Used again in that conversation: still that appointment, not the later one.
    again = staff.get(f"/inbox/{conversation}?template={template}").text
    assert "(Flu vaccine)" in again and "Check-up" not in again
    assert str(later) != str(chosen)


def test_from_the_patients_file_the_next_appointment_is_used_in_french(
    app, clinic, doctor, patient
):
    staff = staff_browser(app, clinic, doctor, lang="fr")
    day = (utcnow() + timedelta(days=2)).astimezone(PARIS).date()
    book(app, clinic, patient, doctor, day + timedelta(days=5), at=time(14, 30), reason="Suivi")
    template = save_template(staff, "RDV du {{ appointment_date }} à {{ appointment_time }}.")
    written = staff.get(f"/inbox/new/{patient.id}?template={template}").text
    when = format_date(day + timedelta(days=5), "full", "fr")
    assert f">RDV du {when} à 14:30.</textarea>" in written
    # No reason in this template: the appointment's reason was not read.
    assert not [a for a, _o in audit_actions(app, clinic) if a == "messaging.appointment_read"]


def test_without_a_coming_appointment_the_variables_are_empty(app, clinic, patient, staff):
    template = save_template(staff, "Date: {{ appointment_date }}.")
    written = staff.get(f"/inbox/new/{patient.id}?template={template}").text
    assert ">Date: .</textarea>" in written
