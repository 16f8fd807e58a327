"""The app's connections to PostgreSQL: a connection the server closed is never used; the ids
the app makes for rows."""

import time
import uuid

import sqlalchemy as sa

import core.db
from core.clinic import apikeys
from core.db import db, new_id
from tenants.scoping import tenant_scope
from tests.worlds import DATABASE_URL, client_for


def test_connections_the_server_ended_are_replaced_before_a_request_uses_them(app, clinic_fr):
    """As after a PostgreSQL restart: every pooled connection ended by the server."""
    with app.app_context(), tenant_scope(clinic_fr.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(app, clinic_fr.slug)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/patients", headers=headers).status_code == 200
    with app.app_context():
        assert db.engine.pool.checkedin() >= 1  # a connection waits in the pool
    admin = sa.create_engine(DATABASE_URL, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        ended = conn.scalars(
            sa.text(
                # Waits (up to 10 s) until each backend has gone: its socket is closed then.
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
        ).all()
    admin.dispose()
    assert ended and all(ended)
    for _ in range(3):  # each request checks a connection out of the pool
        assert client.get("/api/v1/patients", headers=headers).status_code == 200


def test_ids_made_in_a_burst_keep_order_and_the_clock_s_time(monkeypatch):
    """A campaign makes ids far faster than one a millisecond: they still sort in the order
    they were made, and the time each one carries is not ahead of the clock."""
    # Tests that travel in time leave the last id ahead of the clock; a process starts afresh.
    monkeypatch.setattr(core.db, "_last", (0, 0))
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(100_000)]
    after = time.time_ns() // 1_000_000
    assert all(a.int < b.int for a, b in zip(ids, ids[1:], strict=False))
    assert len(set(ids)) == len(ids)
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    stamps = [i.int >> 80 for i in ids]  # the 48-bit Unix millisecond
    assert before <= stamps[0] and stamps[-1] <= after
