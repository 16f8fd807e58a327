"""Scheduling appointment reminders at scale (issue 6): Relais against one RQ job per reminder.

    python -m bench.reminders                         # 250,000 appointments, 1,000,000 reminders
    python -m bench.reminders --appointments 20000    # a quicker run

It builds its own world: a PostgreSQL database (dropped and created again, migrated with
Alembic), a Redis database number (flushed), a French clinic with its rules (the ``fr``
plugin), the appointments and reminders features and the outbox channel, one practitioner,
``--patients`` patients with mobile numbers, and the clinic's schedule set to four reminders
(7 days, 72 h, 24 h and 2 h before). Then:

1. ``--appointments`` appointments are written in SQL (``INSERT ... SELECT``), between 8 and
   60 days ahead, so that each of their four reminders is to come.
2. ``--processes`` processes schedule them through the feature's bulk path
   (``reminders.service.schedule_many``: the batch's reminders, four per appointment with
   ``not_before``, through ``outbox.send_many``, judged by the French rules, contents
   encrypted), in transactions of ``--batch`` appointments; ``RELAIS_BENCH_PRODUCER=send``:
   one ``service.schedule`` per appointment, as booking one does.
3. Measured: the time it takes and reminders/s; Redis (used memory, and this database's keys)
   before and after; the jobs queued in Redis; a sweeper pass over the outbox holding them.
   The baseline: ``Queue.enqueue_at`` (one RQ job per reminder until its time), measured on
   ``--baseline`` jobs and extrapolated to the same number of reminders.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402
from sqlalchemy.orm import selectinload  # noqa: E402

from bench import naive  # noqa: E402
from bench.pipeline import (  # noqa: E402
    Progress,
    fresh_app,
    queued_jobs,
    redis_memory,
    size,
    table,
)
from core.app import create_app  # noqa: E402
from core.clinic import settings  # noqa: E402
from core.clinic.patients import create_patient  # noqa: E402
from core.clinic.staff import create_user  # noqa: E402
from core.db import db  # noqa: E402
from core.delivery import sweeper  # noqa: E402
from tenants import provisioning  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.scoping import system_scope, tenant_scope  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_reminders"
REDIS_URL = "redis://127.0.0.1:6379/13"
PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.regulations.fr.plugin",
    "plugins.features.appointments.plugin",
    "plugins.features.reminders.plugin",
)
SCHEDULE = "7d, 72h, 24h, 2h"
PER_APPOINTMENT = 4
REDIS_BOUND = 1 << 20  # "bounded": scheduling adds less than 1 MiB to Redis, whatever N


def build_world(args) -> tuple[dict, object]:
    config, app = fresh_app(args, PLUGINS)
    with app.app_context(), system_scope():
        for plugin in ("outbox", "fr", "appointments", "reminders"):
            provisioning.set_country_plugin("FR", plugin, True)
        settings.save("FR", "reminders", {"schedule": SCHEDULE})
        tenant = provisioning.create_tenant("Centre de santé du Banc", "banc", "FR")
        db.session.commit()
        tenant_id = tenant.id
    with app.app_context(), tenant_scope(tenant_id):
        tenant = db.session.get(Tenant, tenant_id)
        doctor = create_user(
            "dr@banc.example", "Dr Camille Banc", "practitioner", secrets.token_urlsafe(16)
        )
        progress = Progress("patients", args.patients)
        for n in range(args.patients):
            create_patient(
                tenant,
                {"first_name": f"Patient{n}", "last_name": "Banc", "phone": f"+3361{n:07d}"},
            )
            progress.update(n + 1)
        db.session.commit()
        progress.finish(args.patients)
        config["TENANT_ID"], config["DOCTOR_ID"] = str(tenant_id), str(doctor.id)
    return config, app


def write_appointments(app, config: dict, count: int) -> None:
    """``count`` appointments in SQL, 20 minutes each from 8 to 60 days ahead, 08:00-18:00."""
    start = (datetime.now(UTC) + timedelta(days=8)).replace(hour=7, minute=0, second=0)
    with app.app_context(), system_scope():
        db.session.execute(
            sa.text(
                """
                INSERT INTO appointments (tenant_id, id, patient_id, practitioner_id, starts_at,
                    ends_at, status, type, created_at, updated_at)
                SELECT :tenant, gen_random_uuid(), p.id, :doctor, s.at,
                    s.at + interval '20 minutes', 'booked', 'consultation', now(), now()
                FROM generate_series(0, :n - 1) AS g(k)
                CROSS JOIN LATERAL (SELECT CAST(:start AS timestamptz)
                    + ((g.k / 30) % 52) * interval '1 day'
                    + (g.k % 30) * interval '20 minutes' AS at) s
                JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS r FROM patients) p
                    ON p.r = g.k % :patients
                """
            ),
            {
                "tenant": config["TENANT_ID"],
                "doctor": config["DOCTOR_ID"],
                "n": count,
                "start": start,
                "patients": config["PATIENTS"],
            },
        )
        db.session.commit()


def schedule_slice(config: dict, index: int, processes: int, batch: int, counter) -> None:
    """One process's share: appointments whose row number modulo ``processes`` is ``index``,
    scheduled as booking one does, a transaction per ``batch``."""
    from plugins.features.appointments import Appointment
    from plugins.features.reminders import service

    one_by_one = os.environ.get("RELAIS_BENCH_PRODUCER") == "send"
    app = create_app(config)
    with app.app_context(), tenant_scope(config["TENANT_UUID"]):
        ids = db.session.scalars(sa.select(Appointment.id).order_by(Appointment.id)).all()
        mine = ids[index::processes]
        for at in range(0, len(mine), batch):
            tenant = db.session.get(Tenant, config["TENANT_UUID"])
            rows = db.session.scalars(
                sa.select(Appointment)
                .where(Appointment.id.in_(mine[at : at + batch]))
                .options(selectinload(Appointment.patient), selectinload(Appointment.practitioner))
            ).all()
            if one_by_one:
                for appointment in rows:
                    service.schedule(tenant, appointment)
            else:
                service.schedule_many(tenant, rows)
            db.session.commit()
            db.session.expunge_all()
            with counter.get_lock():
                counter.value += len(rows)


def schedule_all(config: dict, args) -> float:
    counter = multiprocessing.get_context("spawn").Value("l", 0)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=schedule_slice, args=(config, k, args.processes, args.batch, counter)
        )
        for k in range(args.processes)
    ]
    progress = Progress("reminders scheduled", args.appointments * PER_APPOINTMENT)
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        while any(w.is_alive() for w in workers):
            progress.update(counter.value * PER_APPOINTMENT)
            time.sleep(0.5)
    finally:
        for worker in workers:
            worker.join(5)
            if worker.is_alive():
                worker.kill()
    if any(w.exitcode for w in workers):
        raise RuntimeError("a scheduling process failed (its traceback is above)")
    elapsed = time.monotonic() - started
    progress.finish(counter.value * PER_APPOINTMENT)
    return elapsed


def naive_per_job(redis: Redis, n: int) -> float:
    """Bytes of Redis per reminder when each is an RQ job waiting for its time."""
    redis.flushdb()
    before = redis_memory(redis)
    queue = Queue("naive", connection=redis)
    later = datetime.now(UTC) + timedelta(days=8)
    progress = Progress("baseline: enqueue_at", n)
    for k in range(n):
        queue.enqueue_at(later, naive.send_message, k + 1)
        progress.update(k + 1)
    progress.finish(n)
    after = redis_memory(redis)
    redis.flushdb()
    return (after[1] - before[1]) / n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed")
    parser.add_argument("--appointments", type=int, default=250_000)
    parser.add_argument("--patients", type=int, default=5_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=250, help="appointments per transaction")
    parser.add_argument("--baseline", type=int, default=10_000, help="RQ jobs measured")
    args = parser.parse_args(argv)

    config, app = build_world(args)
    config["PATIENTS"] = args.patients
    write_appointments(app, config, args.appointments)
    config["TENANT_UUID"] = uuid.UUID(config["TENANT_ID"])
    redis = Redis.from_url(args.redis_url)
    before = redis_memory(redis)
    seconds = schedule_all(config, args)
    after = redis_memory(redis)
    with app.app_context(), system_scope():
        scheduled = db.session.execute(
            sa.text("SELECT count(*) FROM messages WHERE status = 'scheduled'")
        ).scalar()
        linked = db.session.execute(sa.text("SELECT count(*) FROM reminders")).scalar()
        db.session.commit()
    with app.app_context():
        clock = time.monotonic()
        swept = sweeper.sweep()
        sweep_seconds = time.monotonic() - clock
    per_job = naive_per_job(redis, args.baseline)
    growth = after[0] - before[0]
    baseline_total = per_job * scheduled
    rows = [
        ("scheduling", "reminders written", f"{scheduled:,}", "—", "", f"{linked:,} linked", ""),
        (
            "scheduling",
            f"time for {args.appointments:,} appointments",
            f"{seconds:,.0f} s ({scheduled / seconds:,.0f}/s)",
            "—",
            "",
            "measured",
            "",
        ),
        (
            "Redis",
            "memory growth while scheduling",
            f"{size(growth)} ({size(after[1] - before[1])} in its keys)",
            f"≈ {size(baseline_total)}",
            f"{baseline_total / max(growth, 1):,.0f}×" if growth > 0 else "none held",
            "< 1 MiB",
            "yes" if growth < REDIS_BOUND else "NO",
        ),
        ("Redis", "jobs queued", f"{queued_jobs(redis)}", f"{scheduled:,}", "", "0", ""),
        ("sweeper", "one pass over them", f"{sweep_seconds * 1000:,.0f} ms", "—", "", "", ""),
    ]
    print(table(rows))
    print(
        f"\n- {args.processes} processes, transactions of {args.batch} appointments; "
        f"schedule {SCHEDULE}; French rules judged each reminder.\n"
        f"- Baseline: Queue.enqueue_at took {per_job:,.0f} bytes of Redis per job on "
        f"{args.baseline:,} jobs, extrapolated to {scheduled:,} reminders.\n"
        f"- Sweep moved {swept} (nothing is due for a week)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
