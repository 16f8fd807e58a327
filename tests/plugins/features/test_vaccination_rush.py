"""A rush: 500 booking attempts at once on 50 pairs of slots (dose 1 and dose 2), through
the HTTP API of a real gunicorn (3 processes x 8 threads) on the test database: exactly 50
patients get both doses, every other attempt is told "full", and no slot holds more than
its place."""

import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import time as clock_time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from core.clinic.patients import create_patient
from core.db import db
from core.plugins import DEFAULT_PLUGINS
from plugins.features.vaccination.models import Booking, SlotCount, Stock
from tenants.scoping import tenant_scope
from tests.plugins.features.vaccination_world import PLUGINS, at, build, today
from tests.worlds import ROOT, SERVER, make_clinic, process_env

ATTEMPTS, PAIRS = 500, 50
FIRST_DAY, SECOND_DAY = 3, 31


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(app):
    """gunicorn serving Relais on loopback, on the test database; stopped after the test."""
    port = free_port()
    command = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    server = subprocess.Popen(
        [
            command,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "3",
            "--threads",
            "8",
            "--worker-class",
            "gthread",
            "wsgi:app",
        ],
        env={**process_env(DEFAULT_PLUGINS), "RELAIS_RATELIMIT_STORAGE_URI": "memory://"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.stderr.read()
        try:
            httpx.get(url + "/", timeout=2)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.2)
    yield url
    server.terminate()
    server.wait(timeout=20)
    server.stderr.close()


def test_a_rush_books_each_place_once_and_tells_the_rest_it_is_full(app, served):
    clinic = make_clinic(app, "rush", plugins=PLUGINS)
    # One line, one place a slot: 50 slots of 10 minutes on each of the two days.
    days = (FIRST_DAY, SECOND_DAY)
    world = build(
        app,
        clinic,
        lines=1,
        days=days,
        opens=clock_time(9),
        closes=clock_time(17, 20),
        stock=1000,
    )
    with app.app_context(), tenant_scope(clinic.id):
        patients = [
            create_patient(
                clinic,
                {"first_name": "P", "last_name": f"Rush {n}", "birth_date": "1950-01-01"},
            ).id
            for n in range(ATTEMPTS)
        ]
        db.session.commit()
    first_day, second_day = (today() + timedelta(days=d) for d in days)

    def attempt(n: int) -> httpx.Response:
        pair = n % PAIRS
        minutes = 10 * pair
        body = {
            "patient": str(patients[n]),
            "centre": str(world.centre_id),
            "vaccine": str(world.vaccine_id),
            "first": at(first_day, 9 + minutes // 60, minutes % 60).isoformat(),
            "second": at(second_day, 9 + minutes // 60, minutes % 60).isoformat(),
        }
        with httpx.Client(timeout=60) as client:
            return client.post(
                f"{served}/api/v1/vaccination/bookings",
                json=body,
                headers={"Host": f"rush.{SERVER}", "Authorization": f"Bearer {world.token}"},
            )

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(attempt, range(ATTEMPTS)))

    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == PAIRS, {s: statuses.count(s) for s in set(statuses)}
    refused = [a.json()["error"] for a in answers if a.status_code != 201]
    assert len(refused) == ATTEMPTS - PAIRS
    assert {
        (a.status_code, a.json()["error"]["code"]) for a in answers if a.status_code != 201
    } == {(409, "full")}
    assert all(e["message"] and e["field"] in ("first", "second") for e in refused)
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == 2 * PAIRS
        places = db.session.execute(sa.select(SlotCount.booked, SlotCount.capacity)).all()
        assert len(places) == 2 * PAIRS and all(b == c == 1 for b, c in places)
        assert sorted(
            db.session.scalars(sa.select(Stock.booked).where(Stock.vaccine_id == world.vaccine_id))
        ) == [PAIRS, PAIRS]
        # Each booked patient has both doses, in one series.
        series = db.session.execute(
            sa.select(
                Booking.patient_id, sa.func.count(sa.distinct(Booking.series_id)), sa.func.count()
            ).group_by(Booking.patient_id)
        ).all()
        assert len(series) == PAIRS and all(s == 1 and d == 2 for _p, s, d in series)
