"""API keys of three kinds, end to end through POST /api/v1/messages and a real worker:
live sends, test sends nothing (a simulator answers, test numbers give each failure), team
sends only to the clinic's staff."""

import pytest

from core.clinic import apikeys
from core.db import db
from tenants.scoping import tenant_scope
from tests.worlds import (
    client_for,
    make_clinic,
    make_patient,
    make_staff,
    route_through_twilio,
    wait_until,
)


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("fr", "outbox", "sms_twilio"))


@pytest.fixture
def key(app, clinic):
    """Make a key of a kind; returns a function calling the API with it."""

    def make(kind):
        with app.app_context(), tenant_scope(clinic.id):
            _, token = apikeys.create_key(f"{kind} software", kind)
            db.session.commit()
        client = client_for(app, clinic.slug)
        headers = {"Authorization": f"Bearer {token}"}

        def call(method, path, **kwargs):
            return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

        call.token = token
        return call

    return make


def send(api, patient, channels=("sms",), purpose="transactional"):
    body = {
        "patient_id": str(patient.id),
        "purpose": purpose,
        "template": "Votre RDV est confirmé.",
        "channels": list(channels),
    }
    return api("POST", "/messages", json=body)


def final(api, message_id, statuses=("delivered", "failed")):
    """The message once it reached one of ``statuses``, as the API shows it."""
    seen = []

    def reached():
        seen.append(api("GET", f"/messages/{message_id}").json)
        return seen[-1]["status"] in statuses and seen[-1]

    try:
        return wait_until(reached, timeout=30)
    except AssertionError:
        raise AssertionError(seen[-1]) from None


def test_a_keys_kind_is_in_its_prefix_and_on_its_messages(app, clinic, key, worker):
    live = key("live")
    assert live.token.startswith("rl_live_")
    patient = make_patient(app, clinic)
    created = send(live, patient)
    assert created.status_code == 202
    body = final(live, created.json["id"], statuses=("sent", "delivered"))
    assert body["key_kind"] == "live" and body["provider"] == "outbox_sms"


def test_a_test_key_sends_nothing_and_gets_realistic_receipts(app, clinic, key, worker, twilio):
    route_through_twilio(app, "sms", twilio, "+33939030101")
    test = key("test")
    assert test.token.startswith("rl_test_")
    patient = make_patient(app, clinic, email="jeanne@example.org")
    sms, email = send(test, patient), send(test, patient, channels=["email"])
    assert sms.status_code == email.status_code == 202

    for created in (sms, email):
        body = final(test, created.json["id"])
        assert body["status"] == "delivered" and body["provider"] == "simulator"
        assert body["key_kind"] == "test" and body["delivered_at"]
        assert {e["status"] for e in body["events"]} == {"pending", "sent", "delivered"}
    assert twilio.requests == []  # nothing reached the provider


@pytest.mark.parametrize(
    ("number", "status", "outcomes"),
    [
        ("+33700000000", "delivered", ["accepted"]),
        ("+33700000001", "failed", ["unreachable"]),
        ("+33700000002", "failed", ["permanent"]),
        ("+33700000003", "delivered", ["temporary", "accepted"]),
    ],
)
def test_each_test_number_gives_its_outcome(app, clinic, key, worker, number, status, outcomes):
    test = key("test")
    patient = make_patient(app, clinic, phone=number)
    created = send(test, patient)
    assert created.status_code == 202, created.json
    body = final(test, created.json["id"])
    assert body["status"] == status
    assert [a["outcome"] for a in body["attempts"]] == outcomes
    assert {a["provider"] for a in body["attempts"]} == {"simulator"}


def test_a_test_number_never_leaves_even_with_a_live_key(app, clinic, key, worker, twilio):
    route_through_twilio(app, "sms", twilio, "+33939030101")
    live = key("live")
    patient = make_patient(app, clinic, phone="+33 7 00 00 00 02")
    body = final(live, send(live, patient).json["id"])
    assert body["status"] == "failed" and body["attempts"][0]["outcome"] == "permanent"
    assert twilio.requests == []


def test_a_team_key_sends_only_to_the_staff(app, clinic, key, worker):
    staff = make_staff(app, clinic, "admin")
    team = key("team")
    assert team.token.startswith("rl_team_")
    colleague = make_patient(app, clinic, phone=None, email=staff.email)
    outsider = make_patient(app, clinic, email="jeanne@example.org")

    refused = send(team, outsider, channels=["email", "sms"])
    assert refused.status_code == 403
    assert refused.json["error"]["field"] == "patient_id"
    assert "personnel" in refused.json["error"]["message"]  # the staff, in French

    created = send(team, colleague, channels=["email"])
    assert created.status_code == 202
    body = final(team, created.json["id"], statuses=("sent", "delivered", "failed"))
    assert body["key_kind"] == "team" and body["provider"] == "outbox_email"

    batch = team(
        "POST",
        "/messages/batch",
        json={
            "messages": [
                {"patient_id": str(p.id), "purpose": "transactional", "template": "Hi"}
                for p in (colleague, outsider)
            ]
        },
    ).json
    assert "id" in batch["messages"][0]
    assert batch["messages"][1]["error"]["field"] == "messages[1].patient_id"
    with app.app_context(), tenant_scope(clinic.id):
        from core.delivery.models import Message  # noqa: PLC0415

        written = db.session.scalars(db.select(Message.patient_id)).all()
    assert outsider.id not in written


def test_the_kind_is_chosen_on_the_api_keys_page(app, clinic, key):
    from tests.worlds import csrf_token, log_in  # noqa: PLC0415

    admin = make_staff(app, clinic, "admin")
    page_client = client_for(app, clinic.slug)
    log_in(page_client, admin)
    page = page_client.post(
        "/settings/api-keys",
        data={
            "name": "Tests",
            "kind": "test",
            "csrf_token": csrf_token(page_client, "/settings/api-keys"),
        },
    )
    assert page.status_code == 200 and 'data-testid="new-key">rl_test_' in page.text
    assert "Test" in page_client.get("/settings/api-keys").text
    wrong = page_client.post(
        "/settings/api-keys",
        data={
            "name": "Tests",
            "kind": "gold",
            "csrf_token": csrf_token(page_client, "/settings/api-keys"),
        },
    )
    assert wrong.status_code == 422 and 'aria-invalid="true"' in wrong.text
