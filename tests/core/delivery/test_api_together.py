"""Concurrent ``POST /api/v1/messages`` of a process are written together (core.group_commit):
each request still gets its own answer, its own error, and its own place under the limits."""

import threading
import time

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import apikeys
from core.db import db
from core.delivery import outbox
from core.delivery.models import Message
from core.web.api import _queue_together
from tenants.scoping import tenant_scope
from tests.core.delivery.test_limits import limit
from tests.worlds import OPEN_HOURS, client_for, make_clinic, make_patient


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("fr", "outbox"))


@pytest.fixture
def token(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    return token


@pytest.fixture
def held(monkeypatch):
    """Holds the first transaction of messages until released, counting transactions: the
    requests posted meanwhile queue for the next one."""
    send_many, busy, release = outbox.send_many, threading.Event(), threading.Event()
    transactions = []

    def holding(tenant, drafts, *args, **kwargs):
        transactions.append(len(drafts))
        if not busy.is_set():
            busy.set()
            assert release.wait(10)
        return send_many(tenant, drafts, *args, **kwargs)

    monkeypatch.setattr(outbox, "send_many", holding)
    return busy, release, transactions


def post_together(app, clinic, token, held, bodies: list[dict]) -> list:
    """Post the first body, and the others while its transaction is held; their answers."""
    busy, release, _transactions = held
    answers = [None] * len(bodies)

    def post(i):
        client = client_for(app, clinic.slug)
        answers[i] = client.post(
            "/api/v1/messages", json=bodies[i], headers={"Authorization": f"Bearer {token}"}
        )

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    threads[0].start()
    assert busy.wait(10)
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while _queue_together.waiting(app) < len(bodies) - 1:
        assert time.monotonic() < deadline, "the requests did not queue"
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    return answers


def body(patient_id, text="Votre rendez-vous est confirmé.") -> dict:
    return {"patient_id": str(patient_id), "purpose": "reminder", "template": text}


def written(app, clinic) -> dict:
    with app.app_context(), tenant_scope(clinic.id):
        rows = db.session.execute(sa.select(Message.id, Message.patient_id))
        return {str(message_id): patient_id for message_id, patient_id in rows}


def test_concurrent_posts_are_written_in_one_transaction_each_with_its_answer(
    app, clinic, token, held
):
    patients = [make_patient(app, clinic, phone=f"+3361234560{i}") for i in range(5)]
    unknown = "0190a0c4-1111-7000-8000-000000000000"
    bodies = (
        [body(p.id) for p in patients[:3]] + [body(unknown)] + [body(p.id) for p in patients[3:]]
    )

    answers = post_together(app, clinic, token, held, bodies)

    assert [a.status_code for a in answers] == [202, 202, 202, 422, 202, 202]
    assert answers[3].json["error"]["field"] == "patient_id"
    rows = written(app, clinic)
    sent_to = [rows[a.json["id"]] for a in answers if a.status_code == 202]
    assert sent_to == [p.id for p in patients]  # each answer is its own request's message
    assert held[2] == [1, 4]  # the first alone, the four others (one refused) together


def test_over_a_limit_only_the_requests_past_it_are_refused(app, clinic, token, held, runner):
    limit(runner, "per_minute=3")
    patients = [make_patient(app, clinic, phone=f"+3361234561{i}") for i in range(5)]
    with time_machine.travel(OPEN_HOURS, tick=False):
        answers = post_together(app, clinic, token, held, [body(p.id) for p in patients])

    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 202, 202, 429, 429]  # the group over the limit, then each alone
    assert len(written(app, clinic)) == 3
