"""One factory system for tests: clinics, staff, patients, and clients bound to a host."""

import atexit
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from redis.exceptions import RedisError

from core.app import create_app
from core.clinic import consent, settings
from core.clinic.models import ConsentAction, ConsentMethod, Patient
from core.clinic.patients import create_patient
from core.clinic.staff import create_user
from core.db import db, utcnow
from core.delivery import dispatch, outbox, receipts, sweeper
from core.delivery.models import Attempt, Message
from core.delivery.providers import Receipt
from tenants import provisioning
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope

# Each test run gets its own database and Redis database, so that runs side by side (two
# terminals, a CI job and a developer) never see each other's rows or queues.
RUN = os.getpid()
OWN_DATABASE = "RELAIS_TEST_DATABASE_URL" not in os.environ
DATABASE_URL = os.environ.get(
    "RELAIS_TEST_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:5432/relais_test_{RUN}"
)
ROOT = Path(__file__).resolve().parents[1]


def claim_redis_database() -> str:
    """A Redis database of this run's own among 1-11 (12-15 are the benchmarks'), claimed in
    database 0 with SET NX and given back when the run ends: two runs side by side never
    share queues, so one's workers never take the other's jobs."""
    claims = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        for n in range(1, 12):
            key = f"relais:tests:db{n}"
            if claims.set(key, RUN, nx=True, ex=2 * 3600):  # a killed run's claim expires
                atexit.register(_give_back, claims, key)
                return f"redis://127.0.0.1:6379/{n}"
    except RedisError:
        pass  # no Redis yet: the tests that need it say so
    return f"redis://127.0.0.1:6379/{1 + RUN % 11}"


def _give_back(claims: Redis, key: str) -> None:
    with contextlib.suppress(RedisError):
        if claims.get(key) == str(RUN).encode():
            claims.delete(key)


REDIS_URL = os.environ.get("RELAIS_TEST_REDIS_URL") or claim_redis_database()
SERVER = "relais.test"
PASSWORD = "correct horse battery"
KEEP = {"countries", "alembic_version"}

TEST_CONFIG = {
    "TESTING": True,
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "SERVER_NAME": SERVER,
    "SECRET_KEY": "test-secret-key",
    "ENCRYPTION_KEYS": "uG1pZrSHn5QqvT0u0z0Ic3l6p1m5hWc4kLJj1b4yP3E=",
    "RATELIMIT_STORAGE_URI": "memory://",
    # No test depends on DNS: names are pinned (callbacks check where a name leads).
    "RESOLVE": {
        "localhost": ["127.0.0.1", "::1"],
        "nowhere.invalid": [],
        "intranet.example": ["10.0.0.5"],
        "*": ["93.184.215.14"],  # any other name: a public address
    },
}


class HostClient(FlaskClient):
    """A test client bound to one host, e.g. ``https://demo.relais.test``, sending the
    Referer a browser sends (Flask-WTF checks it on HTTPS)."""

    base_url: str | None = None

    def open(self, *args, **kwargs):
        if self.base_url and isinstance(args[0] if args else None, str):
            kwargs.setdefault("base_url", self.base_url)
            headers = kwargs.setdefault("headers", {})
            headers.setdefault("Referer", self.base_url + "/")
        return super().open(*args, **kwargs)


@contextlib.contextmanager
def app_with(config: dict) -> Iterator[Flask]:
    """An app on the test database and Redis with ``config`` over the tests' (such as other
    ``PLUGINS``), its connections closed on leaving. The session's ``app`` migrates the
    database: a fixture using this one depends on it."""
    application = create_app({**TEST_CONFIG, **config})
    application.test_client_class = HostClient
    try:
        yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def client_for(app, subdomain: str) -> HostClient:
    client = app.test_client()
    client.base_url = f"https://{subdomain}.{SERVER}"
    return client


@dataclass
class Account:
    """A staff member or operator with what they log in with."""

    id: object
    email: str
    password: str
    totp_secret: str | None


def make_clinic(app, slug: str, country: str = "FR", plugins=("fr", "exports")):
    with app.app_context(), system_scope():
        for name in plugins:
            provisioning.set_country_plugin(country, name, True)
        if "outbox" in plugins:  # messages stay sent: tests apply the receipts they need
            settings.save(country, "outbox", {"report_delivery": "no"})
        tenant = provisioning.create_tenant(f"Clinic {slug}", slug, country)
        db.session.commit()
        db.session.refresh(tenant)
        db.session.expunge(tenant)
        return tenant


def make_staff(app, tenant, role="admin", email=None, enrolled=True) -> Account:
    secret = pyotp.random_base32() if enrolled else None
    with app.app_context(), tenant_scope(tenant.id):
        user = create_user(
            email or f"{role}@{tenant.slug}.example",
            f"{role.title()} {tenant.slug}",
            role,
            PASSWORD,
        )
        user.totp_secret, user.totp_enrolled = secret, enrolled
        db.session.commit()
        return Account(user.id, user.email, PASSWORD, secret)


def make_patient(app, tenant, **data) -> Patient:
    data = {"first_name": "Jeanne", "last_name": "Durand", "phone": "0612345678", **data}
    with app.app_context(), tenant_scope(tenant.id):
        patient = create_patient(tenant, data)
        db.session.commit()
        db.session.refresh(patient)
        db.session.expunge(patient)
        return patient


# A Wednesday morning: within every country's hours for non-essential messages (campaigns
# sent under ``time_machine.travel(OPEN_HOURS)`` are not deferred by quiet hours).
OPEN_HOURS = datetime(2026, 11, 18, 10, tzinfo=UTC)


def consent_to_campaigns(app, tenant, patient, channels=("sms",)) -> None:
    """The patient's consent to non-essential messages on ``channels``, noted on paper, and
    the STOP mention French campaign SMS need."""
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        for channel in channels:
            consent.record(who, channel, ConsentAction.GIVEN, ConsentMethod.PAPER, "test")
        with system_scope():
            settings.save("FR", "fr", {"stop_mention": "STOP au 36180"})
        db.session.commit()


def log_in(client: HostClient, account: Account) -> None:
    """The real flow: password, then the authenticator code."""
    page = client.post(
        "/login",
        data={
            "email": account.email,
            "password": account.password,
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    assert page.status_code == 302, page.text
    code = pyotp.TOTP(account.totp_secret).now()
    page = client.post(
        "/login/code", data={"code": code, "csrf_token": csrf_token(client, "/login/code")}
    )
    assert page.status_code == 302, page.text


def csrf_token(client: HostClient, path: str) -> str:
    """Read the CSRF token a page gives its forms, as a browser would."""
    html = client.get(path).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def make_message(
    app,
    tenant,
    patient,
    text: str = "Bonjour",
    purpose: str = "transactional",
    channels=("sms",),
    created=None,
    deliver: bool = True,
    receipt: str | None = None,
    after: float = 1.0,
    not_before=None,
):
    """A message through the real outbox, sent by the dispatcher unless ``deliver`` is false.

    :param created: moves the message's creation there (its send and attempts just after).
    :param receipt: ``delivered`` or ``undelivered``: the provider's report, ``after``
        seconds after the creation, applied as the receipts webhook does.
    """
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        message_id = outbox.send(tenant, who, purpose, text, {}, list(channels)).id
        db.session.commit()
        if deliver:
            dispatch.deliver([str(message_id)])
        row = db.session.get(Message, (tenant.id, message_id))
        if created is not None:
            row.created_at, row.not_before = created, not_before
            if row.sent_at:
                row.sent_at = created + timedelta(milliseconds=200)
            for attempt in db.session.scalars(
                sa.select(Attempt).where(Attempt.message_id == row.id)
            ):
                attempt.at = created + timedelta(milliseconds=100)
            db.session.commit()
        if receipt:
            report = Receipt(
                status=receipt, at=row.created_at + timedelta(seconds=after), message_id=row.id
            )
            assert receipts.apply_receipt(row.provider, report) is not None
            db.session.commit()
        return message_id


def wait_until(check, timeout: float = 60.0):
    """Poll ``check`` until it answers something true, and return that: a bounded wait on a
    real process (a worker, a provider), never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "the expected change did not come"
        time.sleep(0.05)
    return result


def two_minutes_after_a_worker_died(app) -> None:
    """As two minutes after a worker was killed: the leases of the messages it had claimed
    are over, and those it had taken from Redis are due to be pushed again by the sweeper."""
    with app.app_context(), system_scope():
        db.session.execute(
            sa.update(Message).values(
                lease_until=utcnow(), enqueued_at=utcnow() - sweeper.REPUSH_AFTER
            )
        )
        db.session.commit()


def route_through_twilio(app, channel: str, fake, number: str) -> None:
    """The French clinics' ``channel`` ("sms" or "voice") goes through the fake Twilio,
    from ``number`` (the clinic's Twilio number)."""
    plugin, setting = {"sms": ("sms_twilio", "sender"), "voice": ("voice_twilio", "caller")}[
        channel
    ]
    with app.app_context(), system_scope():
        settings.save(
            "FR",
            plugin,
            {
                "account_sid": fake.account_sid,
                "auth_token": fake.auth_token,
                setting: number,
                "base_url": fake.base_url,
            },
        )
        db.session.add(
            ProviderRoute(
                country_code="FR", channel=channel, provider=f"twilio_{channel}", priority=1
            )
        )
        db.session.commit()


def process_env(plugins: tuple[str, ...], config: dict | None = None) -> dict[str, str]:
    """The environment of a process of the app (a worker, a producer) on the test database
    and Redis, with ``plugins`` and the settings of ``config`` (``{"NAME": value}``, given as
    ``RELAIS_NAME``)."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RELAIS_DATABASE_URL": TEST_CONFIG["DATABASE_URL"],
        "RELAIS_REDIS_URL": REDIS_URL,
        "RELAIS_SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
        "RELAIS_ENCRYPTION_KEYS": TEST_CONFIG["ENCRYPTION_KEYS"],
        "RELAIS_SERVER_NAME": TEST_CONFIG["SERVER_NAME"],
        "RELAIS_PLUGINS": json.dumps(plugins),
        "RELAIS_RESOLVE": json.dumps(TEST_CONFIG["RESOLVE"]),
        **{f"RELAIS_{name}": json.dumps(value) for name, value in (config or {}).items()},
    }


def start_worker(
    plugins: tuple[str, ...], *args: str, config: dict | None = None
) -> subprocess.Popen:
    """A real ``relais worker`` process on the test database and Redis, with ``plugins``
    (and ``config``: see :func:`process_env`)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "relais"), "worker", *args],
        env=process_env(plugins, config),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_worker(process: subprocess.Popen) -> None:
    """Stop a worker of :func:`start_worker` as a deployment does (SIGTERM: it finishes its
    job), killed if it does not within 20 s; print what it said (the test's output)."""
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    print("relais worker:", output)
