"""A suspended clinic sends nothing: its queued messages wait (not failed, not lost) and its
plugins' jobs do not run, in a real worker; once the operator reactivates it, both go."""

import signal
import subprocess

import pytest
import sqlalchemy as sa
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from core.clinic.models import AuditEvent
from core.db import db
from core.delivery import jobs
from core.delivery.models import Message, MessageStatus
from core.plugins import DEFAULT_PLUGINS
from plugins.channels.outbox.plugin import OutboxDelivery
from tenants.scoping import tenant_scope
from tests.tenants.test_console import make_operator, post
from tests.worlds import (
    REDIS_URL,
    client_for,
    log_in,
    make_clinic,
    make_message,
    make_patient,
    start_worker,
    wait_until,
)


@pytest.fixture
def clinic(app):
    return make_clinic(app, "held", "FR", plugins=("fr", "outbox"))


@pytest.fixture
def console(app):
    client = client_for(app, "operator")
    log_in(client, make_operator(app))
    return client


@pytest.fixture
def worker_looking_every_second(monkeypatch):
    """A real worker (with its sweeper) whose held jobs look again after a second."""
    monkeypatch.setenv("RELAIS_SUSPENDED_RECHECK_SECONDS", "1")
    running = start_worker(DEFAULT_PLUGINS)
    yield running
    running.send_signal(signal.SIGTERM)
    try:
        output, _ = running.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        running.kill()
        output, _ = running.communicate()
    print("relais worker:", output)


def seen(app, clinic):
    """The message's status, what left through the outbox, and the jobs that ran."""
    with app.app_context(), tenant_scope(clinic.id):
        return (
            db.session.scalars(sa.select(Message.status)).all(),
            db.session.scalars(sa.select(OutboxDelivery.text)).all(),
            db.session.scalars(
                sa.select(AuditEvent.action).where(AuditEvent.action == "job.ran")
            ).all(),
        )


def test_a_suspended_clinic_holds_its_messages_and_jobs_until_reactivated(
    app, clinic, console, request
):
    patient = make_patient(app, clinic, phone="0612345678")
    make_message(app, clinic, patient, text="Votre rendez-vous", deliver=False)  # on Redis
    with app.app_context():
        jobs.run_later(clinic, "tests.core.jobs_for_tests:record", "job.ran")
    assert post(console, "/clinics/held/suspension", suspend="1").status_code == 302

    request.getfixturevalue("worker_looking_every_second")
    redis = Redis.from_url(REDIS_URL)
    delivery, bulk = Queue("transactional", connection=redis), Queue("bulk", connection=redis)
    # The worker took both jobs: the delivery left the message due, the plugin's job went
    # back to wait.
    wait_until(
        lambda: (
            delivery.count == 0
            and bulk.count == 0
            and not StartedJobRegistry(queue=delivery).get_job_ids()
            and ScheduledJobRegistry(queue=bulk).get_job_ids()
        )
    )
    assert seen(app, clinic) == ([MessageStatus.PENDING], [], [])

    assert post(console, "/clinics/held/suspension", suspend="0").status_code == 302

    assert wait_until(lambda: seen(app, clinic)[2]) == ["job.ran"]
    statuses, sent, _ = wait_until(lambda: (found := seen(app, clinic))[1] and found)
    assert sent == ["Votre rendez-vous"]
    assert statuses == [MessageStatus.SENT]
