"""Every read of patient data through the API is audited, as the staff's page read is: the
test walks the app's routes, so an API route added later without its audit fails here."""

import sqlalchemy as sa

from core.clinic.models import AuditEvent
from core.db import db
from tenants.scoping import tenant_scope
from tests.core.api_world import api_world

# Figures only (counts and rates by channel) and the API's contract: no patient, no message
# is read.
AGGREGATES = {"/api/v1/reminders/stats", "/api/v1/openapi.json", "/api/v1/docs"}
# The vaccination centres' agendas and free slots: no patient in them.
AGGREGATES |= {"/api/v1/vaccination/slots", "/api/v1/fhir/Slot", "/api/v1/fhir/Schedule"}
AGGREGATES |= {"/api/v1/fhir/Schedule/<centre_id>", "/api/v1/fhir/metadata"}
# The clinic's configuration: where its callbacks go.
AGGREGATES |= {"/api/v1/callbacks"}
# By patient: each search names the patient.
SEARCHES = {
    "/api/v1/fhir/Communication",
    "/api/v1/fhir/Immunization",
    "/api/v1/vaccination/bookings",
}


def audit_events(app, clinic) -> list[tuple[str, str]]:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.at, AuditEvent.id)
        ).all()


def test_every_api_read_of_a_patient_or_message_is_audited(app):
    world = api_world(app)
    clinic, patient, client, bearer, actor = (
        world.clinic,
        world.patient,
        world.client,
        world.bearer,
        world.actor,
    )
    ids = world.ids

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
        if rule.rule in SEARCHES:
            path += f"?patient=Patient/{patient.id}"
        before = len(audit_events(app, clinic))
        answer = client.get(path, headers=bearer)
        assert answer.status_code == 200, (path, answer.json)
        after = audit_events(app, clinic)[before:]
        if not any(who == actor and action.endswith((".read", ".search")) for action, who in after):
            unaudited.append(path)
    assert unaudited == []
