"""CPU per message of each part of the pipeline, in one process (issue 14): where time goes.

    python -m bench.cpu                                # 5,000 messages, France's rules
    python -m bench.cpu --messages 2000 --profile /tmp/relais-cpu

Wall-clock rates move with whatever else the machine runs; CPU seconds per message much
less. This bench builds its own world (see bench/pipeline.py's ``fresh_app``): a French
clinic with the outbox channel and France's rules (``--rules open``: a plugin allowing every
message, as bench.pipeline uses), ``--patients`` patients with their SMS consent, one API key.
Then, one part at a time, each measured in CPU seconds of this process (Python) and of the
PostgreSQL backends of the bench's database (``/proc/<pid>/stat``):

1. producer: ``--messages`` campaign messages through ``outbox.send_many``, a page of 1,000
   per transaction, as bench.pipeline's producer writes them;
2. worker: a burst of the Relais worker (``core.delivery.worker.Worker``) in this process,
   sending them all (those deferred by quiet hours are made due first, off the clock);
3. API: ``--requests`` ``POST /api/v1/messages`` through the Flask test client (no HTTP
   server: what a gunicorn worker spends in the app), then ``--batches`` batches of 1,000
   messages on ``POST /api/v1/messages/batch``.

``--profile DIR`` runs each part under cProfile, timed in CPU seconds (slower: the figures
then include its overhead), writes ``DIR/<part>.pstats`` and prints the functions that cost most.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.pipeline import (  # noqa: E402
    CAMPAIGN,
    Progress,
    cpu_of,
    drop_database,
    fresh_app,
    plugin_name,
    say,
    send_messages,
)
from core.clinic import apikeys, consent, settings  # noqa: E402
from core.clinic.models import ConsentAction, ConsentMethod  # noqa: E402
from core.clinic.patients import create_patient  # noqa: E402
from core.db import db  # noqa: E402
from core.delivery import jobs, sweeper  # noqa: E402
from core.delivery.worker import Worker  # noqa: E402
from tenants import provisioning  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.scoping import system_scope, tenant_scope  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_cpu"
REDIS_URL = "redis://127.0.0.1:6379/12"  # 1-11 are the test runs' (tests/worlds.py)
RULES = {"fr": "plugins.regulations.fr.plugin", "open": "bench.open_rules"}
HOST = "banc.relais.bench"


def build(args):
    """The app, the clinic's id, the key's token and the patients' ids."""
    plugins = ("plugins.channels.outbox.plugin", RULES[args.rules])
    config, app = fresh_app(args, plugins)
    with app.app_context(), system_scope():
        for module in plugins:
            provisioning.set_country_plugin("FR", plugin_name(module), True)
        if args.rules == "fr":
            settings.save("FR", "fr", {"stop_mention": "STOP au 36180"})
        tenant = provisioning.create_tenant("Centre de santé du Banc", "banc", "FR")
        db.session.commit()
        tenant_id = tenant.id
    progress = Progress("patients", args.patients)
    with app.app_context(), tenant_scope(tenant_id):
        ids = []
        for n in range(args.patients):
            patient = create_patient(
                db.session.get(Tenant, tenant_id),
                {"first_name": f"Patient{n}", "last_name": "Banc", "phone": f"+3361{n:07d}"},
            )
            consent.record(patient, "sms", ConsentAction.GIVEN, ConsentMethod.PAPER, "bench")
            ids.append(str(patient.id))
            progress.update(n + 1)
        _, token = apikeys.create_key("bench")
        db.session.commit()
    progress.finish(args.patients)
    return app, tenant_id, token, ids


class Meter:
    """CPU seconds of this process and of the bench database's PostgreSQL backends, and the
    statements the app sent meanwhile, commits included (an executemany counts one per
    parameter set: the server runs each)."""

    def __init__(self, sql: sa.Engine) -> None:
        self.sql = sql
        self.statements = 0
        self.texts: Counter = Counter()  # how many of each statement (its first words)
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._count)
        sa.event.listen(sa.engine.Engine, "commit", self._commit)
        self.python = time.process_time()
        self.backends = cpu_of(self._pids())

    def _count(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if conn.engine is not self.sql:
            self.statements += len(parameters) if executemany else 1
            self.texts[" ".join(statement.split())[:90]] += len(parameters) if executemany else 1

    def _commit(self, conn) -> None:  # a round trip too
        if conn.engine is not self.sql:
            self.statements += 1

    def _pids(self) -> list[int]:
        with self.sql.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )

    def spent(self) -> tuple[float, float, int]:
        python = time.process_time() - self.python
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self._count)
        sa.event.remove(sa.engine.Engine, "commit", self._commit)
        now = cpu_of(set(self._pids()) | set(self.backends))
        postgres = sum(t - self.backends.get(pid, 0.0) for pid, t in now.items())
        return python, postgres, self.statements


@contextlib.contextmanager
def measured(name: str, args, sql, rows: list, per: int, unit: str):
    # Timed in CPU seconds of this process, not wall time: waiting for PostgreSQL or
    # for a core the other processes hold is not counted against the function waiting.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    meter = Meter(sql)
    clock = time.perf_counter()
    if profiler:
        profiler.enable()
    try:
        yield
    finally:
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - clock
        python, postgres, statements = meter.spent()
        rows.append((name, per, unit, python, postgres, wall, statements))
        if args.statements:
            print(f"\n=== {name}: statements per {unit} ===")
            for text, count in meter.texts.most_common(args.top):
                print(f"{count / per:>9.3f}  {text}")
        if profiler:
            args.profile.mkdir(parents=True, exist_ok=True)
            path = args.profile / f"{name.split()[0]}.pstats"
            profiler.dump_stats(path)
            stats = pstats.Stats(str(path), stream=sys.stdout)
            print(f"\n=== {name}: cumulative (top {args.top}) ===")
            stats.sort_stats("cumulative").print_stats(args.top)
            print(f"=== {name}: own time (top {args.top}) ===")
            stats.sort_stats("tottime").print_stats(args.top)


def produce(args, app, tenant_id, sql, rows) -> None:
    with measured("producer (send_many)", args, sql, rows, args.messages, "message"):
        send_messages(app, tenant_id, args.messages)
    # Off the clock: deferred messages (quiet hours, at night) due now, queued by a sweep.
    with sql.begin() as conn:
        conn.execute(
            sa.text("UPDATE messages SET next_attempt_at = now() WHERE status = 'scheduled'")
        )
    with app.app_context():
        sweeper.sweep()
        db.session.remove()


def work(args, app, sql, rows) -> None:
    with (
        measured("worker (deliver)", args, sql, rows, args.messages, "message"),
        app.app_context(),
    ):
        queues = [jobs.queue(name) for name in jobs.QUEUES]
        Worker(queues, connection=jobs.redis()).work(burst=True, logging_level="WARNING")
        db.session.remove()
    with sql.connect() as conn:
        statuses = dict(
            conn.execute(sa.text("SELECT status, count(*) FROM messages GROUP BY 1")).all()
        )
    say(f"statuses after the worker: {statuses}")


def call_api(args, app, token, patients, sql, rows) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Host": HOST}
    bodies = [
        {
            "patient_id": patients[n % len(patients)],
            "purpose": "campaign",
            "template": CAMPAIGN,
            "variables": {"name": f"Patient{n}", "clinic": "Banc"},
            "channels": ["sms"],
        }
        for n in range(max(args.requests, args.batches * 1000))
    ]
    client.post("/api/v1/messages", json=bodies[0], headers=headers)  # first-request set-up
    with measured("API POST /api/v1/messages", args, sql, rows, args.requests, "request"):
        for body in bodies[: args.requests]:
            answer = client.post("/api/v1/messages", json=body, headers=headers)
            assert answer.status_code == 202, answer.text
    if not args.batches:
        return
    with measured("API batch (1,000 a request)", args, sql, rows, args.batches * 1000, "message"):
        for b in range(args.batches):
            items = [
                {**body, "reference": f"cpu-{b}-{n}"}
                for n, body in enumerate(bodies[b * 1000 : (b + 1) * 1000])
            ]
            answer = client.post(
                "/api/v1/messages/batch", json={"messages": items}, headers=headers
            )
            assert answer.status_code == 202, answer.text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cpu", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed")
    parser.add_argument("--rules", choices=sorted(RULES), default="fr")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--only", choices=("producer", "worker", "api"), action="append")
    parser.add_argument("--profile", type=Path, help="cProfile each part, stats in this folder")
    parser.add_argument(
        "--statements", action="store_true", help="print each part's statements, the most run first"
    )
    parser.add_argument("--top", type=int, default=30, help="functions printed per profile")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    only = set(args.only or ("producer", "worker", "api"))
    app, tenant_id, token, patients = build(args)
    sql = sa.create_engine(args.database_url, pool_size=1)
    rows: list = []
    try:
        if only & {"producer", "worker"}:
            produce(args, app, tenant_id, sql, rows)
        if "worker" in only:
            work(args, app, sql, rows)
        if "api" in only:
            call_api(args, app, token, patients, sql, rows)
    finally:
        sql.dispose()
        with app.app_context():
            db.engine.dispose()
        if not args.keep:
            drop_database(args.database_url)
    print(
        f"\nCPU per unit, rules {args.rules!r}"
        + (" (under cProfile: inflated)" if args.profile else "")
    )
    print(
        f"{'part':<30} {'units':>7} {'Python ms':>10} {'PostgreSQL ms':>14} {'wall ms':>8}"
        f" {'statements':>10}"
    )
    for name, n, unit, python, postgres, wall, statements in rows:
        print(
            f"{name:<30} {n:>7,} {1000 * python / n:>10.3f} {1000 * postgres / n:>14.3f}"
            f" {1000 * wall / n:>8.3f} {statements / n:>10.3f}  per {unit}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
