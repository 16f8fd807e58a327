"""Vaccination at the sources' scale (issue 19): set-up, booking rate, the booking page.

    python -m bench.vaccination                      # 2,000 centres, 8 weeks, 10,000 slots
    python -m bench.vaccination --centres 500 --seconds 5 --attempts 300   # a reduced run
    python -m bench.vaccination --centres 200 --import-only   # the import's CPU, quickly

It builds its own world (bench/pipeline.py's ``fresh_app``): a PostgreSQL database dropped,
created and migrated, a French clinic ``banc`` with the vaccination feature, one vaccine of
two doses. Then:

1. Set-up: a CSV of ``--centres`` centres with ``--weeks`` weeks of opening days (one row a
   centre and day: 2,000 x 56 = 112,000 rows) imported as ``relais vaccination
   import-centres`` does (read, checked, written in bulk, committed): seconds, rows/s, and
   the CPU seconds of the bench's process and of its PostgreSQL backend (what to compare on
   a shared machine, where wall time depends on the neighbours).
2. Bookings per second: ``--attempts`` bookings of both doses through ``POST
   /api/v1/vaccination/bookings`` from ``--clients`` threads against gunicorn (``--workers``
   x ``--threads``), each a patient of its own on a centre with ``--slots`` open places.
3. The booking page (``GET /me/vaccination/book``, the dose-1 slots of a week) with wrk:
   ``--connections`` connections for ``--seconds``, each request with one of 100 patients'
   sessions: requests/s, p50, p95, p99.

Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.api import HOST, gunicorn  # noqa: E402
from bench.pipeline import Children, drop_database, fresh_app  # noqa: E402
from core.clinic import apikeys  # noqa: E402
from core.clinic.models import Patient  # noqa: E402
from core.clinic.patients import create_patient  # noqa: E402
from core.db import db, new_id  # noqa: E402
from core.delivery import access_links  # noqa: E402
from plugins.features.vaccination import importer  # noqa: E402
from plugins.features.vaccination.models import (  # noqa: E402
    Centre,
    CentreKind,
    Line,
    OpeningHours,
    Stock,
    Vaccine,
)
from tenants import provisioning  # noqa: E402
from tenants.scoping import system_scope, tenant_scope  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_vaccination"
REDIS_URL = "redis://127.0.0.1:6379/14"
PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.regulations.fr.plugin",
    "plugins.features.vaccination.plugin",
)
PARIS = ZoneInfo("Europe/Paris")
CONFIG_ENV = "RELAIS_BENCH_VACCINATION_CONFIG"
TARGET_IMPORT_SECONDS = 60
SESSIONS = 100
LINES, SLOT_MINUTES, OPENS, CLOSES = 10, 10, clock_time(8), clock_time(20)


def serve():
    """The app gunicorn serves (``bench.vaccination:serve()``), from the bench's config."""
    from core.app import create_app, long_lived

    return long_lived(create_app(json.loads(os.environ[CONFIG_ENV])))


def centres_csv(centres: int, weeks: int, start: date) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(importer.COLUMNS)
    for c in range(centres):
        kind = ("centre", "mega", "practice", "pharmacy", "mobile")[c % 5]
        for d in range(weeks * 7):
            day = start + timedelta(days=d)
            writer.writerow(
                [
                    f"C{c:05d}",
                    f"Centre {c}",
                    kind,
                    f"{c} rue du Banc",
                    "no",
                    4,
                    1,
                    10,
                    day.isoformat(),
                    "08:30",
                    "18:30",
                    "cov2",
                    400,
                ]
            )
    return out.getvalue()


def server_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a PostgreSQL backend used so far, when it runs on this
    machine; None elsewhere. On a shared machine it says more than wall time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its children (gunicorn's workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def serving_cpu(app, pid: int, database: str) -> float:
    """CPU seconds of gunicorn (``pid`` and its workers) and of the database's PostgreSQL
    backends so far: what serving costs, whatever the neighbours on a shared machine."""
    with app.app_context():
        backends = db.session.scalars(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": database}
        ).all()
        db.session.rollback()
    return tree_cpu(pid) + sum(server_cpu(b) or 0.0 for b in backends)


def timed_import(app, tenant, args) -> tuple[float, int, float, float | None]:
    """Import the CSV: wall seconds, rows, CPU seconds of this process and of its server
    backend (None when the server is not on this machine)."""
    text = centres_csv(args.centres, args.weeks, date.today() + timedelta(days=1))
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(text)
    try:
        with app.app_context(), tenant_scope(tenant.id), open(f.name, encoding="utf-8") as file:
            backend = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
            server, cpu = server_cpu(backend), time.process_time()
            started = time.perf_counter()
            report = importer.run(tenant, importer.read(file))
            assert not report.errors, report.errors[:3]
            db.session.commit()
            elapsed = time.perf_counter() - started
            after = server_cpu(backend)
        server = after - server if after is not None and server is not None else None
        return elapsed, report.openings, time.process_time() - cpu, server
    finally:
        os.unlink(f.name)


def booking_centre(tenant, vaccine, slots: int) -> tuple[Centre, list[datetime], list[datetime]]:
    """A centre with ``slots`` places open for dose 1 (and as many 21 to 42 days later)."""
    per_day = int(
        (
            datetime.combine(date.today(), CLOSES) - datetime.combine(date.today(), OPENS)
        ).total_seconds()
        // 60
        // SLOT_MINUTES
    )
    days = -(-slots // (per_day * LINES))
    centre = Centre(
        code="BENCH",
        name="Centre du Banc",
        kind=CentreKind.MEGA,
        address="1 place du Banc",
        restricted=False,
        slot_minutes=SLOT_MINUTES,
        capacity=1,
    )
    db.session.add(centre)
    db.session.flush()
    db.session.add_all(
        Line(id=new_id(), centre_id=centre.id, position=n, name=str(n)) for n in range(1, LINES + 1)
    )
    first_days = [date.today() + timedelta(days=1 + d) for d in range(days)]
    second_days = [d + timedelta(days=28) for d in first_days]
    for day in first_days + second_days:
        db.session.add(OpeningHours(centre_id=centre.id, day=day, opens=OPENS, closes=CLOSES))
        db.session.add(Stock(centre_id=centre.id, vaccine_id=vaccine.id, day=day, doses=10**6))
    db.session.flush()

    def starts(days):
        return [
            datetime.combine(day, OPENS, PARIS).astimezone(UTC)
            + timedelta(minutes=SLOT_MINUTES * k)
            for day in days
            for k in range(per_day)
        ]

    return centre, starts(first_days), starts(second_days)


def build(args):
    config, app = fresh_app(args, PLUGINS)
    with app.app_context(), system_scope():
        for plugin in ("outbox", "fr", "vaccination"):
            provisioning.set_country_plugin("FR", plugin, True)
        tenant = provisioning.create_tenant("Centre de vaccination du Banc", "banc", "FR")
        db.session.commit()
        db.session.refresh(tenant)
        db.session.expunge(tenant)
    with app.app_context(), tenant_scope(tenant.id):
        vaccine = Vaccine(
            code="cov2",
            name="Cov-2",
            doses=2,
            min_interval_days=21,
            ideal_interval_days=28,
            max_interval_days=42,
        )
        db.session.add(vaccine)
        db.session.commit()
    return config, app, tenant


def world_for_bookings(app, tenant, args):
    with app.app_context(), tenant_scope(tenant.id):
        vaccine = db.session.scalar(sa.select(Vaccine))
        centre, firsts, seconds = booking_centre(tenant, vaccine, args.slots)
        patients = [
            create_patient(
                tenant, {"first_name": "P", "last_name": f"Banc {n}", "birth_date": "1950-01-01"}
            ).id
            for n in range(args.attempts + SESSIONS)
        ]
        _key, token = apikeys.create_key("bench")
        db.session.commit()
        return str(centre.id), str(vaccine.id), firsts, seconds, patients, token


def sessions(app, tenant, patient_ids) -> list[str]:
    """Session cookies of patients, opened through their access links as a browser would."""
    cookies = []
    base = f"https://{HOST}"
    app.config["LOGIN_RATE_LIMIT"] = "10000 per hour"  # the bench's logins, from one address
    for patient_id in patient_ids:
        client = app.test_client()  # a browser each: a new login would end the last one
        with app.app_context(), tenant_scope(tenant.id):
            patient = db.session.get(Patient, (tenant.id, patient_id))
            token = access_links.make_token(tenant, patient)
        page = client.get(f"/me/access/{token}", base_url=base)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
        client.post(
            f"/me/access/{token}",
            data={"csrf_token": csrf},
            base_url=base,
            headers={"Referer": base + "/"},
        )
        cookie = client.get_cookie("session", domain=HOST)
        cookies.append(f"session={cookie.value}")
    return cookies


def bookings_per_second(url, centre, vaccine, firsts, seconds, patients, token, args):
    rng = random.Random(19)
    jobs = []
    for n in range(args.attempts):
        k = rng.randrange(len(firsts))
        jobs.append(
            {
                "patient": str(patients[n]),
                "centre": centre,
                "vaccine": vaccine,
                "first": firsts[k].isoformat(),
                "second": seconds[k].isoformat(),
            }
        )
    local = threading.local()

    def post(body):
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60)
        answer = local.client.post(
            f"{url}/api/v1/vaccination/bookings",
            json=body,
            headers={"Host": HOST, "Authorization": f"Bearer {token}"},
        )
        return answer.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        statuses = list(pool.map(post, jobs))
    elapsed = time.perf_counter() - started
    return statuses, elapsed


WRK_SCRIPT = """
local cookies = {%(cookies)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "%(path)s", {["Host"] = "%(host)s",
    ["Cookie"] = cookies[(n %% #cookies) + 1]})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%f %%f %%f %%d\\n", summary.requests,
    summary.duration, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), summary.errors.status))
end
"""


def page_latency(url, centre, vaccine, cookies, args) -> dict:
    path = f"/me/vaccination/book?centre={centre}&vaccine={vaccine}"
    probe = httpx.get(url + path, headers={"Host": HOST, "Cookie": cookies[0]}, timeout=60)
    if probe.status_code != 200 or 'name="first"' not in probe.text:
        raise RuntimeError(f"the booking page answers {probe.status_code}: {probe.text[:300]}")
    script = WRK_SCRIPT % {
        "cookies": ", ".join(json.dumps(c) for c in cookies),
        "path": path,
        "host": HOST,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(  # noqa: S603 - wrk, with our own script
            [
                shutil.which("wrk"),
                "-t",
                "2",
                "-c",
                str(args.connections),
                "-d",
                f"{args.seconds}s",
                "--latency",
                "-s",
                f.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    requests, micros, errors, p50, p95, p99, status_errors = re.search(
        r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out
    ).groups()
    return {
        "requests": int(requests),
        "rate": int(requests) / (int(micros) / 1e6),
        "errors": int(errors),
        "non_2xx": int(status_errors),
        "p50_ms": float(p50) / 1000,
        "p95_ms": float(p95) / 1000,
        "p99_ms": float(p99) / 1000,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--slots", type=int, default=10_000)
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--import-only", action="store_true", help="measure the import, not the bookings"
    )
    args = parser.parse_args(argv)
    children = Children(Path(tempfile.mkdtemp(prefix="relais-bench-vaccination-")))
    app = None
    try:
        config, app, tenant = build(args)
        seconds, rows, cpu, server = timed_import(app, tenant, args)
        verdict = "under" if seconds < TARGET_IMPORT_SECONDS else "OVER"
        print(
            f"import: {args.centres} centres x {args.weeks} weeks = {rows} opening days in "
            f"{seconds:.1f} s ({rows / seconds:,.0f} rows/s), {verdict} the "
            f"{TARGET_IMPORT_SECONDS} s target; CPU: {cpu:.1f} s here, "
            + (f"{server:.1f} s in PostgreSQL" if server is not None else "PostgreSQL's unknown"),
            flush=True,
        )
        if args.import_only:
            return 0
        centre, vaccine, firsts, seconds_, patients, token = world_for_bookings(app, tenant, args)
        cookies = sessions(app, tenant, patients[args.attempts :])
        config = {**config, "SESSION_COOKIE_SECURE": False}
        url = gunicorn(
            args,
            children,
            "gunicorn",
            "bench.vaccination:serve()",
            {CONFIG_ENV: json.dumps(config)},
            "/",
            ["--keep-alive", "30"],
        )
        pid = children.running["gunicorn"].pid
        database = sa.engine.make_url(args.database_url).database
        cpu = serving_cpu(app, pid, database)
        statuses, elapsed = bookings_per_second(
            url, centre, vaccine, firsts, seconds_, patients, token, args
        )
        spent = (now := serving_cpu(app, pid, database)) - cpu
        cpu = now
        made = statuses.count(201)
        print(
            f"bookings: {made} of {args.attempts} attempts booked both doses "
            f"({statuses.count(409)} full) in {elapsed:.1f} s: {made / elapsed:.0f} bookings/s "
            f"({args.clients} clients, gunicorn {args.workers}x{args.threads}, "
            f"{len(firsts) * LINES} dose-1 places open); CPU (gunicorn + PostgreSQL) "
            f"{1000 * spent / max(args.attempts, 1):.1f} ms per booking",
            flush=True,
        )
        page = page_latency(url, centre, vaccine, cookies, args)
        spent = serving_cpu(app, pid, database) - cpu
        print(
            f"booking page: {page['rate']:.0f} requests/s, p50 {page['p50_ms']:.0f} ms, "
            f"p95 {page['p95_ms']:.0f} ms, p99 {page['p99_ms']:.0f} ms, "
            f"{page['errors']} errors ({page['non_2xx']} non-2xx), {args.connections} "
            f"connections, {SESSIONS} patients' sessions, {args.seconds} s; CPU (gunicorn + "
            f"PostgreSQL) {1000 * spent / max(page['requests'], 1):.1f} ms per page",
            flush=True,
        )
        return 0
    finally:
        children.stop_all()
        if app is not None:
            with app.app_context():
                db.engine.dispose()
        if not args.keep:
            drop_database(args.database_url)


if __name__ == "__main__":
    sys.exit(main())
