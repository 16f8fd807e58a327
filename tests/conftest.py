"""The worlds tests build: a migrated PostgreSQL database, Redis, clinics, staff, patients.

Every test runs against the real servers: PostgreSQL (``RELAIS_TEST_DATABASE_URL``, by default
a database of this run's own, dropped at the end) migrated once per run with Alembic, and
Redis (``RELAIS_TEST_REDIS_URL``, flushed after each test).
Requests really commit, so after each test every table but the reference data is emptied.
"""

import pytest
import sqlalchemy as sa
from redis import Redis

from core import configured
from core.app import create_app
from core.db import db
from core.delivery import routing
from core.extensions import limiter
from core.plugins import DEFAULT_PLUGINS
from tests.fakes.app_server import AppServer
from tests.fakes.twilio import FakeTwilio
from tests.worlds import (
    DATABASE_URL,
    KEEP,
    OWN_DATABASE,
    REDIS_URL,
    TEST_CONFIG,
    Account,
    HostClient,
    app_with,
    client_for,
    log_in,
    make_clinic,
    make_staff,
    start_worker,
    stop_worker,
)


def ensure_database(url: str) -> None:
    """Create the test database if the server does not have it yet."""
    target = sa.make_url(url)
    if target.get_backend_name() != "postgresql":
        return
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
        )
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def drop_database(url: str) -> None:
    target = sa.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    admin.dispose()


def reset_schema(app) -> None:
    """Drop everything and run every migration, the core's and every plugin's branch, as
    ``relais db upgrade`` does: tests use the migrated schema only."""
    from core import schema

    with app.app_context():
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        schema.upgrade()


@pytest.fixture(scope="session")
def app():
    ensure_database(DATABASE_URL)
    application = create_app(TEST_CONFIG)
    application.test_client_class = HostClient
    reset_schema(application)
    yield application
    with application.app_context():
        db.engine.dispose()
    if OWN_DATABASE:
        drop_database(DATABASE_URL)


@pytest.fixture(autouse=True)
def clean_state(request):
    """Empty the tables and Redis after each test; providers are healthy again."""
    yield
    empty_state(request.getfixturevalue("app") if "app" in request.fixturenames else None)


def empty_state(application) -> None:
    """Empty the tables (with ``application``) and Redis; providers are healthy again."""
    routing.breaker.reset()
    configured.forget()  # the configuration the process remembers is gone with the tables
    if application is not None:
        with application.app_context():
            db.session.remove()
            tables = [t.name for t in db.metadata.sorted_tables if t.name not in KEEP]
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} CASCADE")
            limiter.reset()
    Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture(scope="module")
def plugin_app(app, request):
    """An app with the plugins the test module names in its ``PLUGINS`` (a tuple of module
    paths), on the database ``app`` migrated: for a module whose plugins are not the
    built-in ones (a test plugin, or only the channels it tests)."""
    with app_with({"PLUGINS": request.module.PLUGINS}) as application:
        yield application


@pytest.fixture(scope="module")
def app_server(plugin_app):
    """``plugin_app`` served on loopback at the public URLs it gives providers
    (tests/fakes/app_server.py): where a fake provider posts its callbacks."""
    with AppServer(plugin_app) as server:
        yield server


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- the worlds -------------------------------------------------------------------------------


@pytest.fixture
def clinic_fr(app):
    return make_clinic(app, "demo")


@pytest.fixture
def other_clinic(app):
    return make_clinic(app, "other")


@pytest.fixture
def admin(app, clinic_fr) -> Account:
    return make_staff(app, clinic_fr, "admin")


@pytest.fixture
def admin_client(app, clinic_fr, admin) -> HostClient:
    client = client_for(app, clinic_fr.slug)
    log_in(client, admin)
    return client


@pytest.fixture
def worker():
    """A real ``relais worker`` with every built-in plugin, stopped after the test (what it
    printed shows in the test's output)."""
    running = start_worker(DEFAULT_PLUGINS)
    yield running
    stop_worker(running)


@pytest.fixture
def twilio():
    """The loopback fake of Twilio's SMS API (its callbacks go nowhere: see test_sms_twilio
    for a fake posting them to a served app)."""
    with FakeTwilio() as fake:
        yield fake
