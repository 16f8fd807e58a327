"""Integrators: messages read as FHIR R4 ``Communication`` resources by the clinic's practice
software (an API key): validated by ``fhir.resources``; reads audited; another clinic's not
found;
plugins hear of each patient message (``relais_messaging_received``)."""

import io

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication

from core.app import create_app
from core.clinic import apikeys
from core.db import db
from core.plugins import DEFAULT_PLUGINS
from tenants.scoping import tenant_scope
from tests.plugins.features import messaging_log
from tests.plugins.features.messaging_world import (
    PDF,
    PLUGINS,
    audit_actions,
    conversation_id_of,
    make_doctor,
    make_patient_of,
    patient_browser,
    post,
    staff_browser,
)
from tests.worlds import TEST_CONFIG, HostClient, client_for, make_clinic


def api_key(app, tenant) -> dict:
    with app.app_context(), tenant_scope(tenant.id):
        _key, token = apikeys.create_key("practice software")
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


def test_a_conversation_reads_as_communications(app, clinic):
    doctor = make_doctor(app, clinic)
    patient = make_patient_of(app, clinic, [doctor], language="en")
    me = patient_browser(app, clinic, patient)
    sent = post(
        me,
        "/me/messages/",
        practitioner=str(doctor.id),
        body="Renewal, please.",
        files=[(io.BytesIO(PDF), "old.pdf")],
    )
    conversation = conversation_id_of(sent)
    staff = staff_browser(app, clinic, doctor)
    post(staff, f"/inbox/{conversation}/reply", f"/inbox/{conversation}", body="Done.")
    api = client_for(app, clinic.slug)
    auth = api_key(app, clinic)

    found = api.get(f"/api/v1/fhir/Communication?patient=Patient/{patient.id}", headers=auth)
    assert found.status_code == 200 and found.mimetype == "application/fhir+json"
    bundle = Bundle.model_validate(found.json)
    answer, request = [Communication.model_validate(e.resource.model_dump()) for e in bundle.entry]
    assert answer.payload[0].contentString == "Done."
    assert answer.sender.reference == f"Practitioner/{doctor.id}"
    assert answer.recipient[0].reference == f"Patient/{patient.id}"
    assert answer.inResponseTo[0].reference == f"Communication/{request.id}"
    assert request.payload[1].contentAttachment.title == "old.pdf"
    assert request.payload[1].contentAttachment.contentType == "application/pdf"
    assert request.received is not None  # the doctor opened it
    assert answer.topic.coding[0].code == conversation

    one = api.get(f"/api/v1/fhir/Communication/{answer.id}", headers=auth)
    assert Communication.model_validate(one.json).id == answer.id
    assert ("messaging.communication.read", conversation) in audit_actions(app, clinic)

    other = make_clinic(app, "other", plugins=PLUGINS)
    theirs = client_for(app, other.slug)
    missing = theirs.get(f"/api/v1/fhir/Communication/{answer.id}", headers=api_key(app, other))
    assert missing.status_code == 404
    assert missing.json["resourceType"] == "OperationOutcome"
    bad = api.get("/api/v1/fhir/Communication?patient=nobody", headers=auth)
    assert bad.status_code == 422 and bad.json["issue"][0]["expression"] == ["patient"]
    assert api.get("/api/v1/fhir/Communication/x").status_code == 401  # no key


def test_a_patients_request_and_reply_are_announced_to_plugins(app):
    """``relais_messaging_received``: a plugin hears of each patient message, in its
    transaction, without its content."""
    relais = create_app(
        {**TEST_CONFIG, "PLUGINS": (*DEFAULT_PLUGINS, "tests.plugins.features.messaging_log")}
    )
    relais.test_client_class = HostClient
    try:
        clinic = make_clinic(relais, "demo", plugins=(*PLUGINS, "messaging_log"))
        doctor = make_doctor(relais, clinic)
        patient = make_patient_of(relais, clinic, [doctor], language="en")
        me = patient_browser(relais, clinic, patient)
        messaging_log.calls.clear()
        sent = post(me, "/me/messages/", practitioner=str(doctor.id), body="Hello")
        conversation = conversation_id_of(sent)
        post(me, f"/me/messages/{conversation}", body="And also…")
        refused = post(me, f"/me/messages/{conversation}", body="")
        assert refused.status_code == 422
        assert messaging_log.calls == [
            ("demo", conversation, True, True),
            ("demo", conversation, False, True),
        ]
    finally:
        with relais.app_context():
            db.session.remove()
            db.engine.dispose()
