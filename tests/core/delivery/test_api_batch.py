"""Integrators send up to 1,000 messages in one request, each judged and answered on its own;
a batch sent again creates nothing twice; a malformed batch writes nothing."""

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import apikeys, consent
from core.clinic.models import ApiKey, ConsentAction, ConsentMethod, Patient
from core.db import db
from core.delivery import dispatch
from core.delivery.models import Message, MessageEvent
from tenants.scoping import tenant_scope
from tests.worlds import client_for, consent_to_campaigns, make_clinic, make_patient

NIGHT = datetime(2026, 11, 18, 22, 30, tzinfo=UTC)  # after French quiet hours begin


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("outbox", "fr"))


@pytest.fixture
def token(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    return token


@pytest.fixture
def api(app, clinic, token):
    client = client_for(app, clinic.slug)

    def call(method, path, **kwargs):
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    return call


def message_count(app, clinic) -> int:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalar(sa.select(sa.func.count()).select_from(Message))


def test_a_batch_answers_each_message_with_its_verdict_or_its_error(app, clinic, api):
    reminded = make_patient(app, clinic)
    willing = make_patient(app, clinic, first_name="Paul", phone="0611111111")
    consent_to_campaigns(app, clinic, willing)
    opted_out = make_patient(app, clinic, first_name="Zoé", phone="0622222222")
    consent_to_campaigns(app, clinic, opted_out)
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, opted_out.id))
        consent.record(who, "sms", ConsentAction.WITHDRAWN, ConsentMethod.SMS_REPLY, "patient")
        db.session.commit()
    campaign = {"purpose": "campaign", "template": "Vaccination antigrippale ouverte."}
    batch = [
        {"patient_id": str(reminded.id), "purpose": "transactional", "template": "RDV confirmé"},
        {"patient_id": str(willing.id), **campaign, "reference": "c-1"},
        {"patient_id": str(opted_out.id), **campaign},
        {"patient_id": str(uuid.uuid4()), "purpose": "transactional", "template": "Hi"},
        {"patient_id": str(reminded.id), "purpose": "transactional", "template": "{{ broken"},
    ]

    with time_machine.travel(NIGHT, tick=False):
        answer = api("POST", "/messages/batch", json={"messages": batch})

    assert answer.status_code == 202
    body = answer.json
    assert (body["accepted"], body["refused"]) == (3, 2)
    sent, deferred, denied, unknown, broken = body["messages"]
    assert [m["index"] for m in body["messages"]] == [0, 1, 2, 3, 4]
    assert sent["status"] == "pending" and sent["verdict"]["action"] == "allow"
    assert deferred["status"] == "scheduled" and deferred["reference"] == "c-1"
    assert deferred["verdict"]["rule"] == "quiet_hours" and deferred["verdict"]["until"]
    assert denied["status"] == "denied" and "opted out" in denied["verdict"]["reason"]
    assert unknown["error"]["field"] == "messages[3].patient_id" and "id" not in unknown
    assert broken["error"]["field"] == "messages[4].template"
    assert message_count(app, clinic) == 3

    # Each reads as one sent alone: its first event, and the pending one leaves.
    for one in (sent, deferred, denied):
        read = api("GET", f"/messages/{one['id']}").json
        assert [e["status"] for e in read["events"]] == [one["status"]]
    with app.app_context(), tenant_scope(clinic.id):
        dispatch.deliver([sent["id"]])
    assert api("GET", f"/messages/{sent['id']}").json["status"] == "sent"


def test_a_batch_sent_again_creates_nothing_twice_and_answers_the_same_ids(app, clinic, api):
    patient = make_patient(app, clinic)
    batch = [
        {
            "patient_id": str(patient.id),
            "purpose": "transactional",
            "template": f"Message {n}",
            "reference": f"ref-{n}",
        }
        for n in range(5)
    ]
    first = api("POST", "/messages/batch", json={"messages": batch}).json
    batch.append({**batch[0], "reference": "ref-new"})
    again = api("POST", "/messages/batch", json={"messages": batch}).json

    ids = [m["id"] for m in first["messages"]]
    assert [m["id"] for m in again["messages"]][:5] == ids
    assert again["messages"][5]["id"] not in ids
    assert message_count(app, clinic) == 6
    with app.app_context(), tenant_scope(clinic.id):
        events = db.session.scalar(sa.select(sa.func.count()).select_from(MessageEvent))
    assert events == 6


def test_references_are_per_key(app, clinic, api):
    patient = make_patient(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        _, other_token = apikeys.create_key("another software")
        db.session.commit()
    item = {"patient_id": str(patient.id), "purpose": "transactional", "template": "Hi"}
    mine = api("POST", "/messages/batch", json={"messages": [{**item, "reference": "r"}]})
    theirs = api(
        "POST",
        "/messages/batch",
        json={"messages": [{**item, "reference": "r"}]},
        headers={"Authorization": f"Bearer {other_token}"},
    )
    assert mine.json["messages"][0]["id"] != theirs.json["messages"][0]["id"]
    assert message_count(app, clinic) == 2


def item(patient_id, **change):
    return {"patient_id": patient_id, "purpose": "transactional", "template": "Hi", **change}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"messages": "all of them"}, 422, "messages"),
        ({"messages": []}, 422, "messages"),
        ({"messages": [], "colour": "red"}, 422, "colour"),
        ({"messages": ["hi"]}, 422, "messages[0]"),
        ({"messages": [item("{p}", colour="red")]}, 422, "messages[0].colour"),
        ({"messages": [item("{p}"), item("not an id")]}, 422, "messages[1].patient_id"),
        ({"messages": [item("{p}", purpose=3)]}, 422, "messages[0].purpose"),
        ({"messages": [item("{p}", template=["Hi"])]}, 422, "messages[0].template"),
        ({"messages": [item("{p}", variables=[1])]}, 422, "messages[0].variables"),
        ({"messages": [item("{p}", channels="sms")]}, 422, "messages[0].channels"),
        ({"messages": [item("{p}", template="Hi\x00")]}, 422, "messages[0].template"),
        (
            {"messages": [item("{p}", variables={"n": ["a\x00"]})]},
            422,
            "messages[0].variables.n[0]",
        ),
        (
            {"messages": [item("{p}", not_before="2026-12-01T09:00:00")]},
            422,
            "messages[0].not_before",
        ),
        ({"messages": [item("{p}", expires_at="tomorrow")]}, 422, "messages[0].expires_at"),
        ({"messages": [item("{p}", expires_at=1)]}, 422, "messages[0].expires_at"),
        ({"messages": [item("{p}", reference="")]}, 422, "messages[0].reference"),
        ({"messages": [item("{p}", reference="x" * 101)]}, 422, "messages[0].reference"),
        (
            {"messages": [item("{p}", reference="a"), item("{p}", reference="a")]},
            422,
            "messages[1].reference",
        ),
        ({"messages": [item("{p}")] * 1001}, 422, "messages"),
    ],
)
def test_a_malformed_batch_names_the_field_and_writes_nothing(
    app, clinic, api, body, status, field
):
    patient = make_patient(app, clinic)
    text = json.dumps(body).replace("{p}", str(patient.id))

    answer = api("POST", "/messages/batch", data=text, content_type="application/json")

    assert answer.status_code == status, answer.json
    assert answer.json["error"]["field"] == field
    assert message_count(app, clinic) == 0


def test_a_body_too_large_is_refused_before_it_is_read(app, clinic, api):
    answer = api("POST", "/messages/batch", data="x" * (5 << 20), content_type="application/json")
    assert answer.status_code == 413 and answer.json["error"]["field"] == "body"


def test_requests_on_one_key_never_wait_for_its_row(app, clinic, api, token):
    """Another transaction holding the key's row does not hold up the API, and "last used"
    is still recorded, once a minute at most."""
    with app.app_context():
        holder = db.engine.connect()
        holder.execute(sa.text("SELECT * FROM api_keys FOR UPDATE"))
        done = []
        worker = threading.Thread(target=lambda: done.append(api("GET", "/patients")))
        worker.start()
        worker.join(timeout=10)
        holder.rollback()
        holder.close()
    assert done and done[0].status_code == 200

    apikeys._recorded.clear()  # this process has not written it yet: the next request does
    api("GET", "/patients")
    with app.app_context(), tenant_scope(clinic.id):
        first = db.session.scalar(sa.select(ApiKey.last_used_at))
    assert first is not None
    api("GET", "/patients")
    apikeys._recorded.clear()  # even another process's write within the minute is skipped
    api("GET", "/patients")
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(ApiKey.last_used_at)) == first
