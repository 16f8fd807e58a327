"""Reminders end to end: a real ``relais worker`` (with its sweeper) sends a reminder when its
time comes, through the loopback Twilio; the patient's reply OUI, posted as Twilio signs it,
confirms the appointment; a cancellation through the API cancels the reminder still waiting.

No clock is faked here: the appointment starts 2 h and a few seconds from now, so its 2 h
reminder falls due within seconds. Waiting is a bounded poll, never a fixed sleep.
"""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from core.clinic import apikeys, settings
from core.db import db
from core.delivery.models import Message, MessageStatus
from plugins.features.reminders.models import Reminder
from tenants.scoping import tenant_scope
from tests.worlds import (
    client_for,
    make_clinic,
    make_patient,
    make_staff,
    route_through_twilio,
    wait_until,
)

SENDER = "+33939030101"  # the clinic's Twilio number
PHONE = "+33612345678"  # the patient's mobile (make_patient's 06 12 34 56 78)
INBOUND = "/webhooks/twilio_sms/FR/inbound"
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def clinic(app, twilio):
    tenant = make_clinic(app, "demo", plugins=("fr", "sms_twilio", "appointments", "reminders"))
    route_through_twilio(app, "sms", twilio, SENDER)
    with app.app_context(), tenant_scope(tenant.id):
        settings.save_clinic(
            tenant, "reminders", {"schedule": "2h, 1h", "notify_cancellation": "no"}
        )
        db.session.commit()
    return tenant


def reminder_statuses(app, clinic) -> list[tuple]:
    with app.app_context(), tenant_scope(clinic.id):
        return [
            tuple(row)
            for row in db.session.execute(
                sa.select(Reminder.minutes_before, Message.status)
                .join(Message, Message.id == Reminder.message_id)
                .order_by(Reminder.minutes_before.desc())
            )
        ]


def reply(text: str) -> dict[str, str]:
    sid = "SM" + uuid.uuid4().hex
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "Body": text,
        "From": PHONE,
        "FromCountry": "FR",
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsStatus": "received",
        "To": SENDER,
    }


def test_a_due_reminder_reaches_twilio_and_the_reply_oui_confirms(app, clinic, twilio, worker):
    doctor = make_staff(app, clinic, "practitioner", email="dr.martin@demo.example")
    patient = make_patient(app, clinic, language="fr")
    with app.app_context(), tenant_scope(clinic.id):
        _key, key = apikeys.create_key("practice software")
        db.session.commit()
    api = client_for(app, clinic.slug)
    auth = {"Authorization": f"Bearer {key}"}
    starts_at = (datetime.now(UTC) + timedelta(hours=2, seconds=3)).replace(microsecond=0)

    booked = api.post(
        "/api/v1/appointments",
        json={
            "patient_id": str(patient.id),
            "practitioner_id": str(doctor.id),
            "starts_at": starts_at.isoformat(),
            "duration_minutes": 30,
        },
        headers=auth,
    )
    assert booked.status_code == 201, booked.text
    appointment_id = booked.json["id"]

    [sent] = wait_until(lambda: twilio.sent_to(PHONE))
    local = starts_at.astimezone(PARIS)
    assert sent.from_ == SENDER
    assert sent.body.startswith("Bonjour Jeanne, RDV le ")
    assert f"à {local:%H:%M} avec Practitioner demo" in sent.body
    assert "Répondez OUI pour confirmer, NON pour annuler" in sent.body
    assert "demo.relais.test/appointments/r/" in sent.body

    wait_until(lambda: reminder_statuses(app, clinic)[0][1] == MessageStatus.SENT)  # recorded

    hooks = client_for(app, "hooks")
    params = reply("Oui")
    signature = RequestValidator(twilio.auth_token).compute_signature(
        f"{hooks.base_url}{INBOUND}", params
    )
    answered = hooks.post(INBOUND, data=params, headers={"X-Twilio-Signature": signature})
    assert answered.status_code == 204
    shown = api.get(f"/api/v1/appointments/{appointment_id}", headers=auth)
    assert shown.json["status"] == "confirmed"

    cancelled = api.post(f"/api/v1/appointments/{appointment_id}/cancel", headers=auth)
    assert cancelled.status_code == 200
    statuses = reminder_statuses(app, clinic)
    # Twilio took the first (its status callbacks are not posted here); the second waits no more.
    assert statuses == [
        (120, MessageStatus.SENT),
        (60, MessageStatus.CANCELLED),
    ]
    assert len(twilio.sent_to(PHONE)) == 1  # the cancelled reminder never goes
