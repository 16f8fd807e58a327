"""Codes end to end: a real ``relais worker`` takes them from the ``otp`` queue to the
loopback Twilio (SMS) and Twilio Voice (calls); the patient reads the code where it arrives.

No clock is faked: waiting is a bounded poll, never a fixed sleep.
"""

import re

import pytest
import sqlalchemy as sa

from core.clinic.models import Patient
from core.db import db
from tenants.scoping import tenant_scope
from tests.fakes.twilio_voice import FakeTwilioVoice
from tests.worlds import client_for, make_clinic, route_through_twilio, wait_until

SENDER = "+33939030101"  # the clinic's Twilio number, for SMS and calls
MOBILE = "+33612345678"
LANDLINE = "+33142685300"
DIGITS = ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"]


@pytest.fixture
def twilio_voice():
    with FakeTwilioVoice(caller=SENDER) as fake:
        yield fake


@pytest.fixture
def clinic(app, twilio, twilio_voice):
    tenant = make_clinic(app, "demo", plugins=("fr", "sms_twilio", "voice_twilio", "otp"))
    route_through_twilio(app, "sms", twilio, SENDER)
    route_through_twilio(app, "voice", twilio_voice, SENDER)
    return tenant


def test_a_patient_signs_up_with_the_code_twilio_delivered(app, clinic, twilio, worker):
    phone = client_for(app, clinic.slug)
    asked = phone.post("/me/api/code", json={"phone": "06 12 34 56 78"})
    assert asked.status_code == 202

    [sms] = wait_until(lambda: twilio.sent_to(MOBILE))
    assert sms.from_ == SENDER
    code = re.fullmatch(
        r"Votre code est (\d{6}) \(Clinic demo\)\. Il expire dans 5 minutes\. "
        r"Ne le communiquez à personne\.",
        sms.body,
    )[1]
    proved = phone.post(
        "/me/api/code/verify", json={"challenge": asked.json["challenge"], "code": code}
    )
    assert proved.json == {"next": "sign_up"}
    created = phone.post(
        "/me/api/signup",
        json={
            "first_name": "Inès",
            "last_name": "Moreau",
            "birth_date": "1984-05-02",
            "language": "fr",
        },
    )
    assert created.status_code == 201
    assert "Inès Moreau" in phone.get("/me/").text

    replay = client_for(app, clinic.slug)
    again = replay.post(
        "/me/api/code/verify", json={"challenge": asked.json["challenge"], "code": code}
    )
    assert again.status_code == 401  # used once, used up
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(Patient.phone)) == MOBILE
    assert len(twilio.messages) == 1  # one code, sent once


def test_a_landline_is_called_and_the_code_is_spelt_twice(
    app, clinic, twilio, twilio_voice, worker
):
    phone = client_for(app, clinic.slug)
    asked = phone.post("/me/api/code", json={"phone": "01 42 68 53 00"})
    assert asked.json["channel"] == "voice"

    [call] = wait_until(lambda: twilio_voice.calls_to(LANDLINE))
    says = call.says()
    assert says[0] == "Votre code est"
    spelt = says[1:7]
    assert says[7] == "Je répète :" and says[8:14] == spelt
    assert says[14] == "(Clinic demo). Il expire dans cinq minutes. Ne le communiquez à personne."
    code = "".join(str(DIGITS.index(word)) for word in spelt)
    assert twilio.messages == []  # no SMS to a landline

    proved = phone.post(
        "/me/api/code/verify", json={"challenge": asked.json["challenge"], "code": code}
    )
    assert proved.json == {"next": "sign_up"}
