"""Every read of patient data through the API is audited, as the staff's page read is: the
test walks the app's routes, so an API route added later without its audit fails here."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from core.clinic import apikeys
from core.clinic.models import AuditEvent
from core.db import db
from plugins.features.messaging.models import ThreadMessage
from tenants.scoping import tenant_scope
from tests.plugins.features.messaging_world import patient_browser, post
from tests.worlds import client_for, make_clinic, make_message, make_patient, make_staff

PLUGINS = ("fr", "outbox", "appointments", "reminders", "otp", "exports", "messaging")
# Figures only (counts and rates by channel) and the API's contract: no patient, no message
# is read.
AGGREGATES = {"/api/v1/reminders/stats", "/api/v1/openapi.json", "/api/v1/docs"}


def audit_events(app, clinic) -> list[tuple[str, str]]:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.at, AuditEvent.id)
        ).all()


def test_every_api_read_of_a_patient_or_message_is_audited(app):
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    doctor = make_staff(app, clinic, "practitioner")
    patient = make_patient(app, clinic, practitioner_ids=[str(doctor.id)])
    message_id = make_message(app, clinic, patient)
    # A request through the patient's own messaging page: a Communication to read.
    me = patient_browser(app, clinic, patient)
    post(me, "/me/messages/", practitioner=str(doctor.id), body="Une ordonnance, svp.")
    with app.app_context(), tenant_scope(clinic.id):
        communication_id = db.session.scalar(sa.select(ThreadMessage.id))
    with app.app_context(), tenant_scope(clinic.id):
        key, token = apikeys.create_key("practice software")
        db.session.commit()
        actor = f"api_key:{key.id}"
    client = client_for(app, clinic.slug)
    bearer = {"Authorization": f"Bearer {token}"}
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
    ids = {
        "patient_id": patient.id,
        "message_id": message_id,
        "appointment_id": booked.json["id"],
        "communication_id": communication_id,
    }

    reads = sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/api/") and "GET" in rule.methods
        ),
        key=lambda rule: rule.rule,
    )
    assert {r.rule for r in reads} >= {
        "/api/v1/patients",
        "/api/v1/patients/<uuid:patient_id>",
        "/api/v1/patients/<uuid:patient_id>/consents",
        "/api/v1/messages/<uuid:message_id>",
        "/api/v1/appointments",
        "/api/v1/fhir/Appointment/<appointment_id>",
    }
    unaudited = []
    for rule in reads:
        if rule.rule in AGGREGATES:
            continue
        values = {name: ids[name] for name in rule.arguments if name != "tenant"}
        _host, path = rule.build({"tenant": clinic.slug, **values})
        if rule.rule == "/api/v1/fhir/Communication":  # a search by patient only
            path += f"?patient=Patient/{patient.id}"
        before = len(audit_events(app, clinic))
        answer = client.get(path, headers=bearer)
        assert answer.status_code == 200, (path, answer.json)
        after = audit_events(app, clinic)[before:]
        if not any(who == actor and action.endswith((".read", ".search")) for action, who in after):
            unaudited.append(path)
    assert unaudited == []
