"""The app's connections to PostgreSQL: a connection the server closed is never used."""

import sqlalchemy as sa

from core.clinic import apikeys
from core.db import db
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
