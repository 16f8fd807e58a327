"""Integrators send messages through the JSON API and follow their status."""

import uuid
from datetime import timedelta

import pytest

from core.clinic import apikeys
from core.db import db, utcnow
from core.delivery import dispatch
from tenants.scoping import tenant_scope
from tests.worlds import client_for, make_clinic, make_patient


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("outbox", "fr"))


@pytest.fixture
def api(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(app, clinic.slug)

    def call(method, path, **kwargs):
        return client.open(
            f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )

    return call


def test_send_then_follow_every_status_change(app, clinic, api):
    patient = make_patient(app, clinic)
    created = api(
        "POST",
        "/messages",
        json={
            "patient_id": str(patient.id),
            "purpose": "transactional",
            "template": "Bonjour {{ name }}, votre RDV est confirmé.",
            "variables": {"name": "Jeanne"},
            "channels": ["email", "sms"],
        },
    )
    assert created.status_code == 202
    message_id = created.json["id"]
    assert created.json["status"] == "pending"

    with app.app_context(), tenant_scope(clinic.id):
        dispatch.deliver([message_id])
    body = api("GET", f"/messages/{message_id}").json
    assert body["status"] == "sent" and body["channel"] == "sms"  # no e-mail: fell back
    assert [e["status"] for e in body["events"]] == ["pending", "fallback", "sent"]
    assert body["attempts"][0]["provider"] == "outbox_sms"
    assert all(e["at"] for e in body["events"]) and "text" not in body


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"purpose": "spam"}, "purpose"),
        ({"channels": ["fax"]}, "channels"),
        ({"channels": "sms"}, "channels"),
        ({"template": ""}, "template"),
        ({"template": "{{ broken"}, "template"),
        ({"not_before": "tomorrow"}, "not_before"),
        ({"expires_at": "2020-01-01T00:00:00+00:00"}, "expires_at"),
        ({"patient_id": str(uuid.uuid4())}, "patient_id"),
        ({"colour": "red"}, "colour"),
        ({"variables": [1]}, "variables"),
    ],
)
def test_bad_requests_name_the_field_and_send_nothing(app, clinic, api, change, field):
    patient = make_patient(app, clinic)
    body = {"patient_id": str(patient.id), "purpose": "transactional", "template": "Hi", **change}
    response = api("POST", "/messages", json=body)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field


def test_a_scheduled_message_can_be_cancelled_until_it_leaves(app, clinic, api):
    patient = make_patient(app, clinic)
    later = (utcnow() + timedelta(days=1)).isoformat()
    message_id = api(
        "POST",
        "/messages",
        json={
            "patient_id": str(patient.id),
            "purpose": "reminder",
            "template": "Rappel",
            "not_before": later,
        },
    ).json["id"]
    assert api("GET", f"/messages/{message_id}").json["status"] == "scheduled"
    cancelled = api("POST", f"/messages/{message_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = api("POST", f"/messages/{message_id}/cancel")
    assert again.status_code == 409 and again.json["error"]["field"] == "status"
