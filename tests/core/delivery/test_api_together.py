"""Concurrent ``POST /api/v1/messages`` of a process are written together (core.group_commit):
each request still gets its own answer, its own error, and its own place under the limits."""

import threading
from contextlib import contextmanager

import sqlalchemy as sa
import time_machine

from core.db import db
from core.delivery.models import Message
from core.web.api import _queue_together
from tenants.scoping import tenant_scope
from tests.core.delivery.test_api_batch import clinic, token  # noqa: F401 - fixtures
from tests.core.delivery.test_limits import limit
from tests.worlds import (
    DATABASE_URL,
    OPEN_HOURS,
    app_with,
    client_for,
    make_patient,
    wait_until,
)


@contextmanager
def messages_locked():
    """Holds PostgreSQL's SHARE lock on ``messages`` until the block ends: a transaction
    writing messages waits for it, as it would behind a slow commit."""
    engine = sa.create_engine(DATABASE_URL)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE messages IN SHARE MODE")
            yield engine
            conn.rollback()
    finally:
        engine.dispose()


def waiting_on_lock(engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE NOT granted"
                " AND relation = 'messages'::regclass"
            ).scalar()
        )


def post_together(app, clinic, token, bodies: list[dict]) -> list:  # noqa: F811
    """Post the first body, and the others while its transaction waits to write; their
    answers."""
    answers = [None] * len(bodies)

    def post(i):
        client = client_for(app, clinic.slug)
        answers[i] = client.post(
            "/api/v1/messages", json=bodies[i], headers={"Authorization": f"Bearer {token}"}
        )

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    with messages_locked() as engine:
        threads[0].start()
        wait_until(lambda: waiting_on_lock(engine), timeout=10)  # the first reached its write
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: _queue_together.waiting(app) == len(bodies) - 1, timeout=10)
    for thread in threads:
        thread.join(10)
    return answers


def body(patient_id, text="Votre rendez-vous est confirmé.") -> dict:
    return {"patient_id": str(patient_id), "purpose": "reminder", "template": text}


def written(app, clinic) -> dict:  # noqa: F811
    """The clinic's messages: id -> (patient id, time written: that of its transaction)."""
    with app.app_context(), tenant_scope(clinic.id):
        rows = db.session.execute(sa.select(Message.id, Message.patient_id, Message.created_at))
        return {str(message_id): (patient_id, at) for message_id, patient_id, at in rows}


def test_concurrent_posts_are_written_in_one_transaction_each_with_its_answer(
    app,
    clinic,  # noqa: F811
    token,  # noqa: F811
):
    patients = [make_patient(app, clinic, phone=f"+3361234560{i}") for i in range(5)]
    unknown = "0190a0c4-1111-7000-8000-000000000000"
    bodies = (
        [body(p.id) for p in patients[:3]] + [body(unknown)] + [body(p.id) for p in patients[3:]]
    )

    answers = post_together(app, clinic, token, bodies)

    assert [a.status_code for a in answers] == [202, 202, 202, 422, 202, 202]
    assert answers[3].json["error"]["field"] == "patient_id"
    rows = [written(app, clinic)[a.json["id"]] for a in answers if a.status_code == 202]
    assert [patient for patient, _at in rows] == [p.id for p in patients]  # each its own
    times = [at for _patient, at in rows]
    # The first alone, the four others (one refused) in the next transaction, together.
    assert times[0] != times[1] and len(set(times[1:])) == 1


def test_over_a_limit_only_the_requests_past_it_are_refused(
    app,
    clinic,  # noqa: F811
    token,  # noqa: F811
    runner,
):
    limit(runner, "per_minute=3")
    patients = [make_patient(app, clinic, phone=f"+3361234561{i}") for i in range(5)]
    with time_machine.travel(OPEN_HOURS, tick=False):
        answers = post_together(app, clinic, token, [body(p.id) for p in patients])

    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 202, 202, 429, 429]  # the group over the limit, then each alone
    assert len(written(app, clinic)) == 3


def test_requests_do_not_hold_the_connections_the_writing_thread_needs(
    app,
    clinic,  # noqa: F811
    token,  # noqa: F811
):
    """A request that read the database (its key and clinic not yet remembered by a new
    process) gives its connection back before waiting for the writing thread: with a pool
    of one connection, holding it would leave the thread waiting for ever."""
    patient = make_patient(app, clinic)
    headers = {"Authorization": f"Bearer {token}"}
    # A first request records the key's use (once a minute per process, in a session of
    # its own: a second connection), so that the next one needs only its own.
    first = client_for(app, clinic.slug).post(
        "/api/v1/messages", json=body(patient.id), headers=headers
    )
    one_connection = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 3}
    with app_with({"SQLALCHEMY_ENGINE_OPTIONS": one_connection}) as fresh:
        answer = client_for(fresh, clinic.slug).post(
            "/api/v1/messages", json=body(patient.id), headers=headers
        )
        assert answer.status_code == 202, answer.json
    assert sorted(written(app, clinic)) == sorted([first.json["id"], answer.json["id"]])
