"""Campaigns on real ``relais worker`` processes, counted at the loopback Twilio: a worker
killed mid-campaign and two workers running the same chunks send nobody twice.

No clock is faked (the workers are other processes): the patients live in a time zone where
France's rules allow campaign SMS right now, so nothing waits for the morning.
"""

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.clinic import settings
from core.clinic.models import Patient
from core.db import db
from core.delivery.models import Message
from core.plugins import DEFAULT_PLUGINS
from plugins.features.campaigns.models import Campaign
from plugins.regulations.fr.plugin import hooks as france
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import (
    ROOT,
    client_for,
    consent_to_campaigns,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
    process_env,
    route_through_twilio,
    wait_until,
)

SENDER = "+33939030101"
PATIENTS = 24


def open_time_zone() -> str:
    """A time zone where campaign SMS may go for the next half hour under France's rules."""
    now = datetime.now(UTC)
    for hours in range(-12, 15):
        zone = f"Etc/GMT{'+' if hours <= 0 else '-'}{abs(hours)}"  # POSIX signs are reversed
        if all(
            france.quiet_hours.next_allowed(at, zone, "FR") == at
            for at in (now, now + timedelta(minutes=30))
        ):
            return zone
    pytest.skip("no time zone is within France's hours for campaigns now")


@pytest.fixture
def clinic(app, twilio):
    tenant = make_clinic(app, "demo", plugins=("fr", "sms_twilio", "campaigns"))
    route_through_twilio(app, "sms", twilio, SENDER)
    with app.app_context(), system_scope():
        settings.save("FR", "campaigns", {"chunk": "4"})
        db.session.commit()
    zone = open_time_zone()
    for n in range(PATIENTS):
        patient = make_patient(
            app, tenant, first_name=f"P{n}", phone=f"+336123450{n:02d}", timezone=zone
        )
        consent_to_campaigns(app, tenant, patient)
    return tenant


def worker(logs) -> subprocess.Popen:
    """A real ``relais worker``; its log goes to a file (a pipe nobody reads would fill up
    and stop it)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "relais"), "worker"],
        env=process_env(DEFAULT_PLUGINS),
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
    app, clinic, twilio, tmp_path
):
    logs = open(tmp_path / "workers.log", "w")  # noqa: SIM115 - closed at the end
    staff = client_for(app, clinic.slug)
    log_in(staff, make_staff(app, clinic, "admin"))
    form = {
        "csrf_token": csrf_token(staff, "/campaigns/new"),
        "name": "Grippe",
        "channels": "sms",
        "default_language": "fr",
        "template_fr": "Bonjour {{ patient }}, la vaccination contre la grippe commence.",
    }
    campaign_id = staff.post("/campaigns/new", data=form).headers["Location"].rsplit("/", 1)[-1]
    token = csrf_token(staff, f"/campaigns/{campaign_id}")
    started = staff.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": token})
    assert started.status_code == 303

    first = worker(logs)
    try:
        wait_until(lambda: len(twilio.messages) >= 1)
    finally:
        first.send_signal(signal.SIGKILL)  # mid-campaign, maybe mid-chunk
        first.communicate()
    # The campaign goes on with two workers, each chunk queued twice (resume after the kill,
    # twice): two workers run the same chunks.
    others = [worker(logs) for _ in range(2)]
    try:
        for _ in range(2):
            staff.post(f"/campaigns/{campaign_id}/resume", data={"csrf_token": token})
        wait_until(lambda: len({m.to for m in twilio.messages}) == PATIENTS, timeout=120)
        progress = wait_until(
            lambda: (
                (p := staff.get(f"/campaigns/{campaign_id}/progress").json)["state"] == "done" and p
            ),
            timeout=60,
        )
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
