"""Whatever crashes, a message is never lost and never sent twice."""

import signal
import subprocess
import time

import pytest
import sqlalchemy as sa
from redis import Redis

from core.app import create_app
from core.clinic import settings
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import dispatch, outbox, sweeper
from core.delivery.models import Attempt, Message, MessageStatus
from tenants.scoping import system_scope, tenant_scope
from tests.core.delivery.loopback_api import LoopbackApi
from tests.worlds import (
    REDIS_URL,
    TEST_CONFIG,
    make_clinic,
    make_patient,
    start_worker,
    two_minutes_after_a_worker_died,
    wait_until,
)

PLUGINS = ("plugins.regulations.fr.plugin", "tests.core.delivery.loopback")


@pytest.fixture
def api():
    with LoopbackApi() as running:
        yield running


@pytest.fixture
def crash_app(app, api):
    application = create_app({**TEST_CONFIG, "PLUGINS": PLUGINS})
    with application.app_context(), system_scope():
        settings.save("FR", "loopback", {"base_url": api.url})
        db.session.commit()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def worker(*args) -> subprocess.Popen:
    return start_worker(PLUGINS, *args)


def statuses(app, tenant):
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.scalars(sa.select(Message.status)).all()


def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(crash_app, api):
    clinic = make_clinic(crash_app, "demo", "FR", plugins=("fr", "loopback"))
    patient = make_patient(crash_app, clinic)
    with crash_app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        for n in range(6):
            outbox.send(clinic, who, "transactional", f"Message {n}", {}, ["sms"])
        db.session.commit()  # one job carries the six ids

    api.delay = 1.0  # the provider takes each message, then answers slowly
    first = worker("--burst")
    wait_until(lambda: len(api.references()) >= 3)
    first.send_signal(signal.SIGKILL)  # during the third call: taken, not recorded
    first.communicate(timeout=10)

    assert MessageStatus.SENDING in statuses(crash_app, clinic)  # claimed by the dead worker
    with crash_app.app_context():
        with system_scope():  # a minute later, its lease is over
            db.session.execute(sa.update(Message).values(lease_until=utcnow()))
            db.session.commit()
        assert sweeper.sweep()["reclaimed"] >= 4
    api.delay = 0.0
    second = worker("--burst")
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0, output

    assert statuses(crash_app, clinic) == [MessageStatus.SENT] * 6
    references = api.references()
    assert len(references) == len(set(references)) == 6, "a message was sent twice"
    with crash_app.app_context(), tenant_scope(clinic.id):
        outcomes = db.session.scalars(sa.select(Attempt.outcome)).all()
    assert "recovered" in outcomes  # the third message: found at the provider, not resent


def test_redis_flushed_mid_run_loses_nothing(crash_app, api):
    clinic = make_clinic(crash_app, "demo", "FR", plugins=("fr", "loopback"))
    patient = make_patient(crash_app, clinic)
    with crash_app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        for n in range(5):
            outbox.send(clinic, who, "transactional", f"Message {n}", {}, ["sms"])
            db.session.commit()  # five jobs
    api.delay = 0.3
    running = worker("--burst")
    wait_until(lambda: len(api.references()) >= 1)
    Redis.from_url(REDIS_URL).flushdb()  # Redis lost: the queued jobs are gone
    running.communicate(timeout=60)
    assert sorted(statuses(crash_app, clinic)).count(MessageStatus.SENT) < 5

    with crash_app.app_context():
        with system_scope():  # two minutes later, the sweeper notices
            db.session.execute(
                sa.update(Message)
                .where(Message.status == MessageStatus.PENDING)
                .values(enqueued_at=utcnow() - sweeper.REPUSH_AFTER)
            )
            db.session.commit()
        sweeper.sweep()
    api.delay = 0.0
    worker("--burst").communicate(timeout=60)
    assert statuses(crash_app, clinic) == [MessageStatus.SENT] * 5
    assert len(api.references()) == len(set(api.references())) == 5


def send_in_one_job(app, clinic, patient, count: int) -> None:
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        for n in range(count):
            outbox.send(clinic, who, "transactional", f"Message {n}", {}, ["sms"])
        db.session.commit()  # one job carries every id
    assert Redis.from_url(REDIS_URL).llen("rq:queue:transactional") == 1


def test_a_code_waits_for_a_part_of_a_long_job_not_for_the_whole_job(crash_app, api):
    clinic = make_clinic(crash_app, "demo", "FR", plugins=("fr", "loopback"))
    patient = make_patient(crash_app, clinic)
    count = 3 * dispatch.PART
    send_in_one_job(crash_app, clinic, patient, count)

    running = worker("--burst")
    wait_until(lambda: len(api.references()) >= 1)  # the job's first part is being sent
    with crash_app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        code = outbox.send(clinic, who, "otp", "Code 123456", {}, ["sms"]).id
        db.session.commit()
    output, _ = running.communicate(timeout=60)
    assert running.returncode == 0, output

    references = api.references()
    assert len(references) == len(set(references)) == count + 1, "a message was sent twice"
    # Sent once the part at hand was, before the job's rest (handed back behind it).
    assert references.index(str(code)) <= 2 * dispatch.PART
    assert statuses(crash_app, clinic) == [MessageStatus.SENT] * (count + 1)


def test_a_worker_killed_in_a_long_job_loses_nothing_and_sends_nothing_twice(crash_app, api):
    clinic = make_clinic(crash_app, "demo", "FR", plugins=("fr", "loopback"))
    patient = make_patient(crash_app, clinic)
    count = 3 * dispatch.PART
    send_in_one_job(crash_app, clinic, patient, count)

    first = worker("--burst")
    wait_until(lambda: len(api.references()) >= dispatch.PART + 10)  # in its second part
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    two_minutes_after_a_worker_died(crash_app)
    with crash_app.app_context():
        sweeper.sweep()
    worker("--burst").communicate(timeout=60)

    assert statuses(crash_app, clinic) == [MessageStatus.SENT] * count
    references = api.references()
    assert len(references) == len(set(references)) == count, "a message was sent twice"


def test_a_killed_worker_leaves_no_process_holding_the_database(crash_app):
    """RQ's scheduler used to run in a process forked from the worker, copying its open
    database connections (the sweeper's, mid-transaction): killed, the worker left that
    process holding the transaction and its locks for ever, and every TRUNCATE or migration
    waited on it. The scheduler is a thread now: nothing of a killed worker stays."""
    running = worker()  # not burst: its sweeper thread and its scheduler run
    try:
        redis = Redis.from_url(REDIS_URL)
        wait_until(lambda: redis.keys("rq:scheduler-lock:*"))  # the scheduler took its queues
        time.sleep(1.5)  # a few sweeps meanwhile
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(running.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children == [], "the worker forked a process"
    finally:
        subprocess.run(["pkill", "-KILL", "--parent", str(running.pid)], check=False)
        running.send_signal(signal.SIGKILL)
        running.communicate(timeout=10)
    with crash_app.app_context(), db.engine.begin() as conn:  # nobody holds these tables
        conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        conn.exec_driver_sql("LOCK TABLE messages, plugin_settings IN ACCESS EXCLUSIVE MODE")
