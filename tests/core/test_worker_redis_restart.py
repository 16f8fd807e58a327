"""`relais worker` outlives a Redis restart: it waits for Redis, goes on, and no message is lost.

A redis-server of the test's own (a free port, no persistence: a restart loses every queued
job, as an evicted or failed-over Redis would) is killed under a busy worker, whose job then
finishes without Redis to record it, and started again on the same port.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis import Redis

from core.app import create_app
from core.clinic import settings
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import outbox, sweeper
from core.delivery.models import Message, MessageStatus
from tenants.scoping import system_scope, tenant_scope
from tests.core.delivery.loopback_api import LoopbackApi
from tests.worlds import ROOT, TEST_CONFIG, make_clinic, make_patient, wait_until

PLUGINS = ("plugins.regulations.fr.plugin", "tests.core.delivery.loopback")
PASSWORD = "never-in-the-logs"


class RedisServer:
    """A redis-server on a free loopback port, with a password, that a test can kill and
    start again on the same port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--requirepass", PASSWORD],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        wait_until(lambda: self._answers(client), timeout=10)
        client.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    @staticmethod
    def _answers(client: Redis) -> bool:
        try:
            return client.ping()
        except OSError:
            return False
        except Exception:  # noqa: BLE001 - redis-py's ConnectionError while it starts
            return False


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.fixture
def api():
    with LoopbackApi() as running:
        yield running


@pytest.fixture
def busy_app(app, api, redis_server):
    application = create_app({**TEST_CONFIG, "PLUGINS": PLUGINS, "REDIS_URL": redis_server.url})
    with application.app_context(), system_scope():
        settings.save("FR", "loopback", {"base_url": api.url})
        db.session.commit()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def start_worker(redis_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RELAIS_DATABASE_URL": TEST_CONFIG["DATABASE_URL"],
        "RELAIS_REDIS_URL": redis_url,
        "RELAIS_SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
        "RELAIS_ENCRYPTION_KEYS": TEST_CONFIG["ENCRYPTION_KEYS"],
        "RELAIS_SERVER_NAME": TEST_CONFIG["SERVER_NAME"],
        "RELAIS_PLUGINS": json.dumps(PLUGINS),
    }
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "relais"), "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def send(app, clinic, patient, count: int) -> None:
    """``count`` messages, one job each (queued after each commit, when Redis is there)."""
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        for n in range(count):
            outbox.send(clinic, who, "transactional", f"Message {n}", {}, ["sms"])
            db.session.commit()


def statuses(app, clinic) -> list[MessageStatus]:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalars(sa.select(Message.status)).all()


class Output:
    """What a process prints, read line by line as it comes (a test waits on a line)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.reader.start()

    def _read(self, process) -> None:
        for line in process.stdout:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def __str__(self) -> str:
        return "".join(self.lines)


def test_a_worker_outlives_a_redis_restart_and_every_message_is_sent(busy_app, api, redis_server):
    clinic = make_clinic(busy_app, "demo", "FR", plugins=("fr", "loopback"))
    patient = make_patient(busy_app, clinic)
    api.delay = 0.5  # each send takes a while: the worker is busy when Redis goes
    worker = start_worker(redis_server.url)
    output = Output(worker)
    try:
        send(busy_app, clinic, patient, 3)
        wait_until(lambda: len(api.references()) >= 1, timeout=30)
        redis_server.kill()  # mid-job: the job ends with no Redis to record it in
        send(busy_app, clinic, patient, 2)  # not queued: Redis is down
        wait_until(lambda: output.has("Redis lost during job") or worker.poll(), timeout=10)
        assert worker.poll() is None, "the worker exited when Redis went"
        redis_server.start()  # empty: the jobs it held are lost
        send(busy_app, clinic, patient, 2)
        with busy_app.app_context(), system_scope():  # two minutes later, for the sweeper
            db.session.execute(
                sa.update(Message)
                .where(Message.status == MessageStatus.PENDING)
                .values(enqueued_at=utcnow() - sweeper.REPUSH_AFTER)
            )
            db.session.commit()

        wait_until(lambda: statuses(busy_app, clinic) == [MessageStatus.SENT] * 7, timeout=20)
        assert worker.poll() is None, "the worker exited"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        output.reader.join(timeout=5)
        worker.stdout.close()
        print("relais worker:", output)

    assert worker.returncode == 0, str(output)
    references = api.references()
    assert len(references) == len(set(references)) == 7, "a message was sent twice"
    assert output.has("Redis unavailable")  # each wait is logged...
    assert PASSWORD not in str(output)  # ...without the password


def test_a_worker_outlives_its_database_connections_being_cut(busy_app, api, redis_server):
    clinic = make_clinic(busy_app, "demo", "FR", plugins=("fr", "loopback"))
    patient = make_patient(busy_app, clinic)
    api.delay = 0.5
    worker = start_worker(redis_server.url)
    output = Output(worker)
    try:
        send(busy_app, clinic, patient, 3)
        wait_until(lambda: len(api.references()) >= 1, timeout=30)
        # A failover: every connection to the database is cut, the busy job's among them.
        with busy_app.app_context(), db.engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        send(busy_app, clinic, patient, 2)
        # The busy job either went on (its connection was idle, in the pool: the pre-ping
        # replaced it) or failed (cut mid-query): then, a minute later, its lease is over
        # and the sweeper takes its message back.
        everything_sent = [MessageStatus.SENT] * 5
        wait_until(
            lambda: statuses(busy_app, clinic) == everything_sent or output.has("Error"),
            timeout=20,
        )
        with busy_app.app_context(), system_scope():
            db.session.execute(
                sa.update(Message)
                .where(Message.status == MessageStatus.SENDING)
                .values(lease_until=utcnow())
            )
            db.session.commit()

        wait_until(lambda: statuses(busy_app, clinic) == everything_sent, timeout=20)
        assert worker.poll() is None, "the worker exited"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        output.reader.join(timeout=5)
        worker.stdout.close()
        print("relais worker:", output)

    assert worker.returncode == 0, str(output)
    references = api.references()
    assert len(set(references)) == 5
