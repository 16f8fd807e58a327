"""Campaigns on real ``relais worker`` processes, counted at the loopback Twilio: a worker
killed mid-campaign and two workers running the same chunks send nobody twice; a rate spaces
the chunks and their messages; a chunk job lost by Redis is queued again by the sweep, and
still nobody gets the message twice.

No clock is faked (the workers are other processes): the clinics' country runs a stand-in
regulation plugin that allows every message at any hour (``open_rules``), so that these
tests run, and mean the same, whatever the time and day.
"""

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.clinic import settings
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import jobs
from core.delivery.jobs import queue
from core.delivery.models import Message
from core.plugins import DEFAULT_PLUGINS, host
from plugins.features.campaigns import service
from plugins.features.campaigns.models import Campaign, CampaignChunk
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import (
    ROOT,
    HostClient,
    client_for,
    consent_to_campaigns,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
    process_env,
    route_through_twilio,
    two_minutes_after_a_worker_died,
    wait_until,
)

SENDER = "+33939030101"
PATIENTS = 24
PLUGINS = (*DEFAULT_PLUGINS, "tests.plugins.features.open_rules")


def clinic_with(plugin_app, twilio, patients: int, chunk: int):
    """A French clinic under the stand-in rules, its SMS through the loopback Twilio,
    ``patients`` who consented to campaigns, chunks of ``chunk``."""
    tenant = make_clinic(plugin_app, "demo", plugins=("open_rules", "sms_twilio", "campaigns"))
    route_through_twilio(plugin_app, "sms", twilio, SENDER)
    with plugin_app.app_context(), system_scope():
        settings.save("FR", "campaigns", {"chunk": str(chunk)})
        db.session.commit()
    for n in range(patients):
        patient = make_patient(plugin_app, tenant, first_name=f"P{n}", phone=f"+336123450{n:02d}")
        consent_to_campaigns(plugin_app, tenant, patient)
    return tenant


def started_campaign(plugin_app, clinic, **fields) -> tuple[HostClient, str, str]:
    """A campaign to every patient, saved and started by the clinic's admin on its pages:
    the admin's client, the campaign's id and a CSRF token."""
    staff = client_for(plugin_app, clinic.slug)
    log_in(staff, make_staff(plugin_app, clinic, "admin"))
    form = {
        "csrf_token": csrf_token(staff, "/campaigns/new"),
        "name": "Grippe",
        "channels": "sms",
        "default_language": "fr",
        "template_fr": "Bonjour {{ patient }}, la vaccination contre la grippe commence.",
        **fields,
    }
    campaign_id = staff.post("/campaigns/new", data=form).headers["Location"].rsplit("/", 1)[-1]
    token = csrf_token(staff, f"/campaigns/{campaign_id}")
    started = staff.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": token})
    assert started.status_code == 303
    return staff, campaign_id, token


def done(staff, campaign_id) -> dict:
    """The campaign's progress, once it is done."""
    return wait_until(
        lambda: (
            (p := staff.get(f"/campaigns/{campaign_id}/progress").json)["state"] == "done" and p
        ),
        timeout=60,
    )


def worker(logs) -> subprocess.Popen:
    """A real ``relais worker``; its log goes to a file (a pipe nobody reads would fill up
    and stop it)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "relais"), "worker"],
        env=process_env(PLUGINS),
        cwd=ROOT,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )


def stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=20)
    except Exception:  # noqa: BLE001
        process.kill()
        process.communicate()


def test_a_killed_worker_and_two_workers_on_one_chunk_send_nobody_twice(
    plugin_app, twilio, tmp_path
):
    app = plugin_app
    clinic = clinic_with(plugin_app, twilio, PATIENTS, chunk=4)
    logs = open(tmp_path / "workers.log", "w")  # noqa: SIM115 - closed at the end
    staff, campaign_id, token = started_campaign(plugin_app, clinic)

    first = worker(logs)
    try:
        wait_until(lambda: len(twilio.messages) >= 1)
    finally:
        first.send_signal(signal.SIGKILL)  # mid-campaign, maybe mid-chunk
        first.communicate()
    two_minutes_after_a_worker_died(app)
    # The campaign goes on with two workers, each chunk queued twice (resume after the kill,
    # twice): two workers run the same chunks.
    others = [worker(logs) for _ in range(2)]
    try:
        for _ in range(2):
            staff.post(f"/campaigns/{campaign_id}/resume", data={"csrf_token": token})
        wait_until(lambda: len({m.to for m in twilio.messages}) == PATIENTS, timeout=120)
        progress = done(staff, campaign_id)
    finally:
        for process in others:
            stop(process)
        logs.close()
        print((tmp_path / "workers.log").read_text()[-5000:])
    assert twilio.duplicates() == {}
    assert len(twilio.messages) == PATIENTS
    assert progress["total"] == PATIENTS and progress["written"] == PATIENTS
    with app.app_context(), tenant_scope(clinic.id):
        written = db.session.scalar(
            sa.select(sa.func.count(sa.distinct(Message.patient_id))).where(
                Message.purpose == "campaign"
            )
        )
        assert written == db.session.scalar(
            sa.select(sa.func.count()).select_from(Message).where(Message.purpose == "campaign")
        )
        assert db.session.scalar(sa.select(Campaign.state)) == "done"
        assert db.session.scalar(sa.select(sa.func.count(Patient.id))) == PATIENTS


def test_a_campaign_with_a_rate_is_sent_no_faster(plugin_app, twilio, tmp_path):
    clinic = clinic_with(plugin_app, twilio, 6, chunk=3)
    logs = open(tmp_path / "workers.log", "w")  # noqa: SIM115 - closed at the end
    running = worker(logs)
    try:
        staff, campaign_id, _token = started_campaign(plugin_app, clinic, rate="60")  # 1 a second
        wait_until(lambda: len(twilio.messages) == 6, timeout=60)
        done(staff, campaign_id)
    finally:
        stop(running)
        logs.close()
        print((tmp_path / "workers.log").read_text()[-5000:])
    with plugin_app.app_context(), tenant_scope(clinic.id):
        started = db.session.scalar(sa.select(Campaign.started_at))
        second_chunk_done = db.session.scalar(
            sa.select(CampaignChunk.done_at).where(CampaignChunk.number == 1)
        )
    # The second chunk is written when its time comes (3 patients at 60 a minute: 3 s; RQ's
    # scheduler keeps times to the whole second, so up to one second early)...
    assert second_chunk_done >= started + timedelta(seconds=2)
    # ... and the provider gets the n-th message no sooner than n seconds after the start.
    arrivals = sorted(m.date_created for m in twilio.messages)
    for n, arrival in enumerate(arrivals):
        assert arrival >= started + timedelta(seconds=n), (n, arrival - started)
    assert twilio.duplicates() == {}


def test_a_lost_chunk_job_is_queued_again_by_the_sweep_and_sends_nobody_twice(
    plugin_app, twilio, tmp_path
):
    clinic = clinic_with(plugin_app, twilio, 12, chunk=4)
    staff, campaign_id, _token = started_campaign(plugin_app, clinic)
    with plugin_app.app_context():
        # The plan and the first chunk run here; the first chunk queues the second...
        jobs.run(str(clinic.id), service.JOB + "plan", campaign_id)
        jobs.run(str(clinic.id), service.JOB + "run_chunk", campaign_id, 0)
        # ... whose job Redis loses (the campaign's jobs only: its messages stay queued).
        assert (campaign_id, 1) in chunk_jobs()
        forget_campaign_jobs()

    def sweep(after: timedelta) -> list:
        return sweep_in(plugin_app, after)

    assert sweep(timedelta(minutes=1)) == []  # within the lease: not taken for lost yet
    # Past the lease, and past it again: the second chunk is queued again, twice over.
    assert sweep(service.LEASE + timedelta(minutes=1)) == [(campaign_id, 1)]
    assert sweep(2 * service.LEASE + timedelta(minutes=2)) == [(campaign_id, 1)] * 2
    logs = open(tmp_path / "workers.log", "w")  # noqa: SIM115 - closed at the end
    running = worker(logs)
    try:
        wait_until(lambda: len(twilio.messages) >= 12, timeout=60)
        progress = done(staff, campaign_id)
    finally:
        stop(running)
        logs.close()
        print((tmp_path / "workers.log").read_text()[-5000:])
    assert twilio.duplicates() == {}
    assert len(twilio.messages) == 12 and len({m.to for m in twilio.messages}) == 12
    assert progress["written"] == progress["total"] == 12


@pytest.mark.parametrize("rate", [None, "600"])
def test_chunks_planned_before_their_queued_time_was_kept_are_queued_again_if_lost(
    plugin_app, twilio, rate
):
    clinic = clinic_with(plugin_app, twilio, 12, chunk=4)
    _staff, campaign_id, _token = started_campaign(
        plugin_app, clinic, **({"rate": rate} if rate else {})
    )
    with plugin_app.app_context():
        jobs.run(str(clinic.id), service.JOB + "plan", campaign_id)
        # As campaigns_0002 left them: no queued time. And Redis lost their jobs.
        with tenant_scope(clinic.id):
            db.session.execute(sa.update(CampaignChunk).values(queued_at=None))
            db.session.commit()
        forget_campaign_jobs()

    assert sweep_in(plugin_app, timedelta(minutes=1)) == []  # started within the lease
    lost = sweep_in(plugin_app, service.LEASE + timedelta(minutes=1))
    # With a rate, every chunk was queued at the start; without, the first one only (it
    # queues the next: chunks without a queued time may be waiting for it).
    assert sorted(lost) == [(campaign_id, n) for n in ((0, 1, 2) if rate else (0,))]
    with plugin_app.app_context():
        while waiting := chunk_jobs():  # what a worker does with them
            forget_campaign_jobs()
            for _campaign, number in waiting:
                jobs.run(str(clinic.id), service.JOB + "run_chunk", campaign_id, number)
        with tenant_scope(clinic.id):
            assert db.session.scalar(sa.select(Campaign.state)) == "done"
            assert db.session.scalar(sa.select(Campaign.total)) == 12
    assert sweep_in(plugin_app, 2 * service.LEASE) == []  # nothing is lost any more


def sweep_in(app, after: timedelta) -> list:
    """A sweep ``after`` from now; the chunk jobs queued then."""
    with app.app_context():
        with system_scope():
            host().pm.hook.relais_sweep(now=utcnow() + after)
        return chunk_jobs()


def forget_campaign_jobs() -> None:
    """Redis loses the campaign's jobs (its messages' jobs stay queued)."""
    for job in queue("bulk").jobs:
        if str(job.args[1]).startswith(service.JOB):
            job.delete()


def chunk_jobs() -> list[tuple]:
    """The campaign chunk jobs waiting in the ``bulk`` queue: (campaign id, number) each."""
    return [
        tuple(job.args[2:])
        for job in queue("bulk").jobs
        if str(job.args[1]) == service.JOB + "run_chunk"
    ]
