"""A clinic with every feature of the API and one of each thing the API reads: a patient, a
message, a request in a conversation, an appointment, two vaccination doses (one given), a
callback endpoint.
Shared by the walks over every API route (the OpenAPI contract, the audit of reads)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from core.clinic import apikeys
from core.db import db
from plugins.features.messaging.models import ThreadMessage
from plugins.features.vaccination import staff
from tenants.scoping import tenant_scope
from tests.plugins.features.messaging_world import patient_browser, post
from tests.plugins.features.vaccination_world import at, build, today
from tests.worlds import HostClient, client_for, make_clinic, make_message, make_patient, make_staff

PLUGINS = (
    "fr",
    "outbox",
    "appointments",
    "reminders",
    "otp",
    "exports",
    "messaging",
    "vaccination",
    "callbacks",
)


@dataclass
class ApiWorld:
    clinic: object
    patient: object
    client: HostClient
    bearer: dict[str, str]  # the Authorization header of the clinic's key
    actor: str  # the key as the audit log names it
    ids: dict[str, str]  # a value for each path parameter of the API's routes


def api_world(app) -> ApiWorld:
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    doctor = make_staff(app, clinic, "practitioner")
    patient = make_patient(app, clinic, practitioner_ids=[str(doctor.id)])
    message_id = make_message(app, clinic, patient)
    # A request through the patient's own messaging page: a Communication to read.
    me = patient_browser(app, clinic, patient)
    post(me, "/me/messages/", practitioner=str(doctor.id), body="Une ordonnance, svp.")
    with app.app_context(), tenant_scope(clinic.id):
        communication_id = db.session.scalar(sa.select(ThreadMessage.id))
        key, token = apikeys.create_key("practice software")
        db.session.commit()
        actor = f"api_key:{key.id}"
    client = client_for(app, clinic.slug)
    bearer = {"Authorization": f"Bearer {token}"}
    registered = client.put(
        "/api/v1/callbacks", headers=bearer, json={"url": "https://pms.example/relais"}
    )
    assert registered.status_code == 201, registered.json
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    booked = client.post(
        "/api/v1/appointments",
        headers=bearer,
        json={
            "patient_id": str(patient.id),
            "practitioner_id": str(doctor.id),
            "starts_at": starts.isoformat(),
            "duration_minutes": 30,
            "type": "consultation",
        },
    )
    assert booked.status_code == 201, booked.json
    vaccination = build(app, clinic)
    first = at(today() + timedelta(days=1), 9)
    doses = client.post(
        "/api/v1/vaccination/bookings",
        headers=bearer,
        json={
            "patient": str(patient.id),
            "centre": str(vaccination.centre_id),
            "vaccine": str(vaccination.vaccine_id),
            "first": first.isoformat(),
            "second": (first + timedelta(days=28)).isoformat(),
        },
    )
    assert doses.status_code == 201, doses.json
    given, second = (d["id"] for d in doses.json["doses"])
    with app.app_context(), tenant_scope(clinic.id):
        staff.mark_given(clinic, uuid.UUID(given), "FK1234")
        db.session.commit()
    ids = {
        "patient_id": str(patient.id),
        "message_id": str(message_id),
        "appointment_id": booked.json["id"],
        "communication_id": str(communication_id),
        "centre_id": str(vaccination.centre_id),
        "series_id": doses.json["series"],
        "booking_id": second,
        "dose_id": given,
    }
    return ApiWorld(clinic, patient, client, bearer, actor, ids)
