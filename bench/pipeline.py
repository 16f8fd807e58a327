"""Relais' delivery pipeline against the naive RQ design, side by side (issue 3, "Performance").

    python -m bench.pipeline                                  # the full run, ~10 minutes
    python -m bench.pipeline --messages 20000 --bulk 20000    # a quicker one

It builds its own world: a PostgreSQL database (dropped and created again, migrated with
Alembic), a Redis database number (flushed), a French clinic with the outbox channel and
``--patients`` patients with mobile numbers. Then, on real processes:

1. Throughput. ``--messages`` campaign messages written with ``outbox.send_many`` in
   transactions of 1,000 while two ``relais worker`` processes drain them; and the naive design
   (one RQ job per message on two stock ``rq worker`` processes, RQ's forking ``Worker``, see
   naive.py) with ``--baseline-messages`` messages. Messages/s from the first send to the last
   message handed to the provider; enqueue-to-provider latency p50/p99; CPU ms per message of
   each part. Relais runs it once per ``--providers`` (printed side by side): the outbox
   channel, then real HTTP providers, the loopback fakes of Infobip's SMS API v3 (100
   messages a request, delivery reports posted back) and of Twilio's Messages API (one
   request per message, 16 at once over kept-alive connections) with the app's webhooks
   beside them (bench/providers.py); ``--scale 1,2,4`` runs the outbox row again with 1, 2
   and 4 workers.
2. OTP latency (p50/p99) of ``--otps`` codes sent one every 100 ms while ``--bulk`` campaign
   messages are written by another process and drained.
3. Redis memory before/after ``--scheduled`` messages are scheduled for tomorrow through
   ``outbox.send``, topped up to ``--scheduled-total`` by copying rows in SQL; and the bytes
   the naive design (``Queue.enqueue_at``, one job per message) needs per scheduled message.

Every process it starts is stopped at the end, on errors and on Ctrl-C. Logs of the workers
are kept in a temporary folder, printed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/pipeline.py` as well as `python -m bench.pipeline`
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue, Worker  # noqa: E402
from sqlalchemy.orm import defer  # noqa: E402

from bench import naive  # noqa: E402
from bench.providers import PLUGINS as PROVIDER_PLUGINS  # noqa: E402
from bench.providers import PROVIDERS, FakeProvider, process_tree, start_webhooks  # noqa: E402
from core import statistics  # noqa: E402
from core.app import create_app  # noqa: E402
from core.clinic import settings  # noqa: E402
from core.clinic.models import Patient  # noqa: E402
from core.clinic.patients import create_patient  # noqa: E402
from core.crypto import generate_key  # noqa: E402
from core.db import db  # noqa: E402
from core.delivery import outbox, queues, sweeper  # noqa: E402
from core.delivery.jobs import QUEUES  # noqa: E402
from core.delivery.models import Message  # noqa: E402
from tenants import provisioning  # noqa: E402
from tenants.models import ProviderRoute, Tenant  # noqa: E402
from tenants.scoping import system_scope, tenant_scope  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench"
REDIS_URL = "redis://127.0.0.1:6379/14"
# Only what the scenarios use: the outbox channel, Infobip's and Twilio's SMS (scenario 1's
# HTTP rows, against their loopback fakes: bench/providers.py), and a regulation plugin
# allowing every message at any hour (open_rules.py), so that campaigns leave whenever the
# bench runs. Each row routes France's SMS to its provider alone.
PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.channels.sms_infobip.plugin",
    "plugins.channels.sms_twilio.plugin",
    "bench.open_rules",
)
TRANSACTION = 1000  # messages written per transaction, as a campaign writes them
CAMPAIGN = (
    "Bonjour {{ name }}, {{ clinic }} ouvre la vaccination contre la grippe. "
    "Prenez rendez-vous en ligne. STOP au 36180"
)
OTP = "Votre code Relais : {{ code }}. Il expire dans 10 minutes."
TARGET_RATE, TARGET_RATIO, TARGET_OTP_P99 = 2000, 40, 0.250
REDIS_BOUND = 1 << 20  # "bounded": the scheduled messages add less than 1 MiB to Redis
UNFINISHED = ("pending", "sending", "scheduled")


# --- processes --------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop like Ctrl-C does, children included."""


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


class Children:
    """Every process the benchmark starts; ``stop_all`` ends each of them, by its pid."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen | multiprocessing.Process] = {}

    def popen(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(  # noqa: S603 - our own executables
            argv,
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the benchmark, which stops them in order
        )
        log.close()
        self.running[name] = process
        return process

    def spawn(self, name: str, target, *args) -> multiprocessing.Process:
        process = multiprocessing.get_context("spawn").Process(
            target=target, args=args, name=name, daemon=True
        )
        process.start()
        self.running[name] = process
        return process

    def check(self) -> None:
        """Fail at once if a worker died (its log says why)."""
        for name, process in self.running.items():
            code = process.poll() if isinstance(process, subprocess.Popen) else None
            if code is not None:
                tail = (self.logdir / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited with code {code}:\n{tail}")

    def stop(self, name: str, timeout: float = 20.0) -> None:
        process = self.running.pop(name, None)
        if process is None:
            return
        if isinstance(process, subprocess.Popen):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # RQ: warm shutdown, the job finishes
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        else:
            if process.is_alive():
                process.terminate()
                process.join(timeout)
                if process.is_alive():
                    process.kill()
                    process.join(5)

    def stop_all(self) -> None:
        for name in list(self.running):
            try:
                self.stop(name)
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                print(f"could not stop {name}: {exc}", file=sys.stderr)


# --- progress ---------------------------------------------------------------------------------


class Progress:
    """One line on stderr, redrawn in place (a line every 5 s when stderr is not a terminal)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, max(total, 1)
        self.started = self.shown = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = ""
        self.printed = -1  # the count last shown

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown < (0.2 if self.tty else 5.0):
            return
        self.shown, self.printed = now, done
        elapsed = now - self.started
        width = 25
        filled = min(width, int(width * done / self.total))
        line = (
            f"{self.label:<30} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:>9,}/{self.total:,} {done / elapsed if elapsed else 0:>7,.0f}/s "
            f"{elapsed:6.1f} s {note}"
        )
        self.last = line
        if self.tty:
            sys.stderr.write("\r" + line[:150] + "\033[K")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self, done: int, note: str = "") -> None:
        if self.tty or self.printed != done:
            self.update(done, note, force=True)
        if self.tty:
            sys.stderr.write("\n")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the world --------------------------------------------------------------------------------


@dataclass
class World:
    args: argparse.Namespace
    config: dict
    app: object
    sql: sa.Engine  # as the superuser: measures across tenants, bypassing row-level security
    redis: Redis
    tenant_id: object
    children: Children
    results: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            RELAIS_DATABASE_URL=self.config["DATABASE_URL"],
            RELAIS_REDIS_URL=self.config["REDIS_URL"],
            RELAIS_SECRET_KEY=self.config["SECRET_KEY"],
            RELAIS_ENCRYPTION_KEYS=self.config["ENCRYPTION_KEYS"],
            RELAIS_SERVER_NAME=self.config["SERVER_NAME"],
            RELAIS_PLUGINS=json.dumps(self.config["PLUGINS"]),
            RELAIS_RATELIMIT_STORAGE_URI="memory://",
            RELAIS_PREFERRED_URL_SCHEME=self.config["PREFERRED_URL_SCHEME"],
            NAIVE_DATABASE_URL=libpq_url(self.config["DATABASE_URL"]),
        )
        return env

    def scalar(self, statement: str, **params):
        with self.sql.connect() as conn:
            return conn.execute(sa.text(statement), params).scalar()

    def execute(self, statement: str, **params) -> None:
        with self.sql.begin() as conn:
            conn.execute(sa.text(statement), params)


def analyze_as_the_sweeper(tables: list[str], timeout: float = 15.0) -> list[str]:
    """What the sweeper does within a minute of rows loaded in SQL (core.statistics.refresh),
    once PostgreSQL counts them: a backend reports its writes up to 10 s after it goes idle,
    and a refresh before that sees nothing changed. In an app context; returns the tables
    analyzed."""
    deadline = time.monotonic() + timeout
    counted = sa.text(
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY(:t)"
        " AND n_mod_since_analyze > 0"
    )
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            if conn.scalar(counted, {"t": tables}) == len(tables):
                break
            time.sleep(0.2)
    return statistics.refresh()


def libpq_url(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate_database(url: str) -> None:
    target = sa.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def drop_database(url: str) -> None:
    target = sa.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    admin.dispose()


def fresh_app(args, plugins: tuple[str, ...]) -> tuple[dict, object]:
    """A benchmark's own world: its database dropped, created and migrated, its Redis
    database flushed, an app with ``plugins``. Returns the app's config and the app."""
    from core.schema import upgrade

    say(f"Database {args.database_url} (recreated), Redis {args.redis_url} (flushed)")
    recreate_database(args.database_url)
    config = {
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SERVER_NAME": "relais.bench",
        "SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_KEYS": generate_key(),
        "PLUGINS": list(plugins),
        "RATELIMIT_STORAGE_URI": "memory://",
        "PREFERRED_URL_SCHEME": "https",  # webhook addresses, as behind a deployment's TLS
    }
    app = create_app(config)
    with app.app_context():
        upgrade()
    Redis.from_url(args.redis_url).flushdb()
    return config, app


def plugin_name(module: str) -> str:
    """A plugin's name from its module, as the plugin host names it."""
    parts = module.split(".")
    return parts[-2] if parts[-1] == "plugin" else parts[-1]


def build_world(
    args, children: Children, plugins: tuple[str, ...] = PLUGINS, configure=None
) -> World:
    """The app with ``plugins``, each enabled for France; ``configure()`` then runs in the
    system scope (plugin settings); the clinic ``banc`` and ``--patients`` patients."""
    config, app = fresh_app(args, plugins)
    redis = Redis.from_url(args.redis_url)
    with app.app_context(), system_scope():
        for module in plugins:
            provisioning.set_country_plugin("FR", plugin_name(module), True)
        if configure is not None:
            configure()
        tenant = provisioning.create_tenant("Centre de santé du Banc", "banc", "FR")
        db.session.commit()
        tenant_id = tenant.id
    progress = Progress("patients", args.patients)
    with app.app_context(), tenant_scope(tenant_id):
        tenant = db.session.get(Tenant, tenant_id)
        for n in range(args.patients):
            create_patient(
                tenant,
                {"first_name": f"Patient{n}", "last_name": "Banc", "phone": f"+3361{n:07d}"},
            )
            progress.update(n + 1)
        db.session.commit()
    progress.finish(args.patients)
    sql = sa.create_engine(args.database_url, pool_size=2)
    with sql.begin() as conn:
        conn.exec_driver_sql(naive.SCHEMA)
    return World(args, config, app, sql, redis, tenant_id, children)


def tear_down(children: Children, world: World | None, args) -> None:
    """Stop every process a benchmark started, empty its Redis database and drop its
    PostgreSQL database (unless ``--keep``)."""
    children.stop_all()
    if world is None:
        return
    world.redis.flushdb()
    world.sql.dispose()
    with world.app.app_context():
        db.engine.dispose()
    if not args.keep:
        drop_database(args.database_url)


MESSAGE_TABLES = (
    "messages",
    "message_events",
    "attempts",
    "early_receipts",
    "outbox_deliveries",
    "naive_deliveries",
    "naive_messages",
)


def reset_messages(world: World) -> None:
    """Empty the outbox between scenarios, so each starts from the same state.

    No ANALYZE: a bench starts as a new deployment does, on tables the planner has never
    measured, so that a plan cached while they were empty shows in the figures (the rate per
    tenth of scenario 1).
    """
    # the benches that share it load the outbox plugin or not, and may have no --analyzed-empty
    exist = world.scalar(
        "SELECT string_agg(t, ', ') FROM unnest(CAST(:t AS text[])) t"
        " WHERE to_regclass(t) IS NOT NULL",
        t=list(MESSAGE_TABLES),
    )
    world.execute(f"TRUNCATE {exist} CASCADE")
    if getattr(world.args, "analyzed_empty", False):  # the hard case: planned, empty, filled
        world.execute("ANALYZE messages, message_events, attempts, outbox_deliveries")


# --- sending ----------------------------------------------------------------------------------


def send_messages(
    app,
    tenant_id,
    count: int,
    purpose: str = "campaign",
    not_before: datetime | None = None,
    progress: Progress | None = None,
    counter=None,
) -> None:
    """What a campaign does: a page of patients through ``outbox.send_many`` (the bulk path;
    ``RELAIS_BENCH_PRODUCER=send``: one ``outbox.send`` a message, as before), commit, next."""
    one_by_one = os.environ.get("RELAIS_BENCH_PRODUCER") == "send"
    done = 0
    with app.app_context(), tenant_scope(tenant_id):
        while done < count:
            tenant = db.session.get(Tenant, tenant_id)
            # Read as the campaigns plugin reads a page of recipients: their encrypted
            # attributes (health data, not for sending) neither loaded nor decrypted.
            patients = db.session.scalars(
                sa.select(Patient)
                .order_by(Patient.id)
                .options(defer(Patient.attributes), defer(Patient.attribute_tokens))
            ).all()
            size = min(TRANSACTION, count - done)
            drafts = [
                {
                    "patient": patient,
                    "purpose": purpose,
                    "template": CAMPAIGN,
                    "variables": {"name": patient.first_name, "clinic": tenant.name},
                    "channels": ["sms"],
                    "not_before": not_before,
                }
                for patient in islice(cycle(patients), size)
            ]
            if one_by_one:
                for draft in drafts:
                    outbox.send(tenant, **draft)
            else:
                outbox.send_many(tenant, drafts)
            db.session.commit()  # the ids reach Redis right after this commit
            done += size
            if progress:
                progress.update(done)
            if counter is not None:
                counter.value = done
        db.session.remove()
    if progress:
        progress.finish(done)


def bulk_producer(config: dict, tenant_id, count: int, counter) -> None:
    """Scenario 2's bulk send, in a process of its own (as a web app or cron would)."""
    send_messages(create_app(config), tenant_id, count, counter=counter)


def wait_finished(world: World, purpose: str, total: int, label: str, timeout: float) -> None:
    """Until every ``purpose`` message left the outbox (sent or final), at most ``timeout``."""
    progress = Progress(label, total)
    deadline = time.monotonic() + timeout
    while True:
        world.children.check()
        left = world.scalar(
            "SELECT count(*) FROM messages WHERE purpose = :p AND status = ANY(:s)",
            p=purpose,
            s=list(UNFINISHED),
        )
        written = world.scalar("SELECT count(*) FROM messages WHERE purpose = :p", p=purpose)
        done = written - left
        progress.update(done)
        if written >= total and left == 0:
            progress.finish(done)
            return
        if time.monotonic() > deadline:
            progress.finish(done)
            raise TimeoutError(f"{label}: {left:,} messages still waiting after {timeout:.0f} s")
        time.sleep(0.5)


# When each message was handed to the provider, with when it was written: for the outbox
# channel, its delivery row; for an HTTP provider, the ``sent`` step of its history (written
# once the provider answered that it took it).
HANDED = {
    "outbox": (
        "SELECT m.created_at AS created, d.at FROM messages m JOIN outbox_deliveries d"
        " ON d.tenant_id = m.tenant_id AND d.message_id = m.id WHERE m.purpose = :p"
    ),
    "http": (
        "SELECT m.created_at AS created, e.at FROM messages m JOIN message_events e"
        " ON e.tenant_id = m.tenant_id AND e.message_id = m.id"
        " WHERE m.purpose = :p AND e.status = 'sent'"
    ),
}
LATENCY = """
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM at - created)) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM at - created)) AS p99,
       max(extract(epoch FROM at - created)) AS worst,
       max(at) AS last
FROM ({handed}) h
"""


TENTHS = """
SELECT t.tenth, count(*) AS n, max(t.at) AS until
FROM (SELECT at, ntile(10) OVER (ORDER BY at) AS tenth FROM ({times}) x) t
GROUP BY t.tenth ORDER BY t.tenth
"""
WRITTEN = "SELECT created_at AS at FROM messages WHERE purpose = :p"


def rates_by_tenth(world: World, times: str, started: datetime, purpose: str) -> list[float]:
    """Messages/s over each tenth of a run, from ``started``: the tenth's messages divided by
    the time between the last one of the tenth before and its own last one."""
    with world.sql.connect() as conn:
        rows = conn.execute(sa.text(TENTHS.format(times=times)), {"p": purpose}).all()
    rates, before = [], started
    for _tenth, n, until in rows:
        rates.append(n / max((until - before).total_seconds(), 1e-3))
        before = until
    return rates


def relais_figures(world: World, purpose: str, handed: str = HANDED["outbox"]) -> dict:
    """Enqueue-to-provider latency: ``messages.created_at`` is stamped when the message's
    INSERT is flushed, right before the commit that pushes its id to Redis; ``handed``
    (:data:`HANDED`) says when the provider took it."""
    with world.sql.connect() as conn:
        row = conn.execute(sa.text(LATENCY.format(handed=handed)), {"p": purpose}).mappings().one()
        statuses = dict(
            conn.execute(
                sa.text("SELECT status, count(*) FROM messages WHERE purpose = :p GROUP BY 1"),
                {"p": purpose},
            ).all()
        )
        attempts = conn.execute(
            sa.text(
                "SELECT count(*) FROM attempts a JOIN messages m"
                " ON m.tenant_id = a.tenant_id AND m.id = a.message_id WHERE m.purpose = :p"
            ),
            {"p": purpose},
        ).scalar()
    return {**row, "statuses": statuses, "attempts": attempts}


# --- CPU accounting ---------------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pids) -> dict[int, float]:
    """CPU seconds (user + system) each of ``pids`` has spent; the ones gone are left out."""
    spent = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            spent[pid] = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return spent


def pids_named(prefix: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith(prefix):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def peak_rss(pid: int) -> int:
    """The most resident memory ``pid`` has used so far, in bytes (VmHWM); 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every process, this benchmark's or not)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK  # user nice system idle iowait irq softirq steal


class CpuMeter:
    """CPU seconds spent by each part while a phase runs, and by the whole machine.

    PostgreSQL: the backends connected to the bench's database and the server's own
    processes (WAL writer, checkpointer...), not other databases' backends: on a machine
    shared with other runs, theirs would count as ours.
    """

    def __init__(self, parts: dict[str, list[int]], world: World | None = None) -> None:
        self.world = world
        self.parts = {**parts, "postgres": self._postgres(), "redis": pids_named("redis")}
        self.spent: dict[str, float] = {}  # CPU seconds of each part, once reported
        self.before = {name: cpu_of(pids) for name, pids in self.parts.items()}
        self.busy = machine_busy()
        self.started = time.monotonic()

    def _postgres(self) -> list[int]:
        if self.world is None:
            return pids_named("postgres")
        with self.world.sql.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " OR backend_type <> 'client backend'"
                    )
                ).scalars()
            )

    def report(self) -> str:
        # PostgreSQL forks a backend per connection: count those that appeared meanwhile too.
        self.parts["postgres"] = sorted(set(self.parts["postgres"]) | set(self._postgres()))
        wall = time.monotonic() - self.started
        spent = {}
        for name, pids in self.parts.items():
            before = self.before.get(name, {})
            # A process that ended meanwhile took its count with it: left out, not negative.
            spent[name] = sum(t - before.get(pid, 0.0) for pid, t in cpu_of(pids).items())
        busy = machine_busy() - self.busy
        self.spent = spent
        return (
            f"CPU over {wall:.1f} s: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items())
            + f"; the whole machine busy {busy:.1f} of {wall * (os.cpu_count() or 1):.1f} CPU-s"
        )


# --- workers ----------------------------------------------------------------------------------


def start_relais_workers(world: World, count: int) -> list[subprocess.Popen]:
    executable = str(Path(sys.executable).parent / "relais")
    started = [
        world.children.popen(f"relais-worker-{n}", [executable, "worker"], world.worker_env())
        for n in range(count)
    ]
    wait_for_workers(world, "otp", count)
    return started


def start_naive_workers(world: World, count: int) -> list[subprocess.Popen]:
    executable = str(Path(sys.executable).parent / "rq")
    argv = [executable, "worker", "-c", "bench.naive", "--url", world.args.redis_url, "naive"]
    started = [
        world.children.popen(f"rq-worker-{n}", argv, world.worker_env()) for n in range(count)
    ]
    wait_for_workers(world, "naive", count)
    return started


def wait_for_workers(world: World, queue: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(Worker.all(queue=Queue(queue, connection=world.redis))) < count:
        world.children.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} workers on {queue!r} not ready after {timeout:.0f} s")
        time.sleep(0.2)


def stop_workers(world: World, prefix: str) -> None:
    for name in [n for n in world.children.running if n.startswith(prefix)]:
        world.children.stop(name)


# --- profiling (optional) ---------------------------------------------------------------------


class Profiler:
    """py-spy on the Relais workers and on this process (the producer) during scenario 1
    (``--profile DIR``): raw collapsed stacks, one file per process, and a summary."""

    def __init__(self, world: World, workers: list[subprocess.Popen], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        targets = {f"relais-worker-{n}": w.pid for n, w in enumerate(workers)}
        targets["producer"] = os.getpid()
        self.files = {name: folder / f"{name}.txt" for name in targets}
        self.spies = [
            world.children.popen(
                f"py-spy-{name}",
                ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--idle"]
                + ["--nonblocking", "--format", "raw", "-o", str(self.files[name])],
                dict(os.environ),
            )
            for name, pid in targets.items()
        ]

    def stop(self, world: World) -> str:
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in self.spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        for name in self.files:
            world.children.stop(f"py-spy-{name}")
        workers = [path for name, path in self.files.items() if name != "producer"]
        return (
            "Relais workers, time inside jobs:\n"
            + summarize_profiles(workers, "perform_job")
            + "\n\nThe producer (send_many + commit + push):\n"
            + summarize_profiles([self.files["producer"]], "send_messages")
        )


def summarize_profiles(files: list[Path], within: str, top: int = 25) -> str:
    """Where time goes inside ``within``: inclusive share of each function of Relais, and
    the largest leaves (what the time is spent in). Idle samples (waiting on PostgreSQL or
    Redis) count: py-spy ran with --idle."""
    inclusive, leaves, total = Counter(), Counter(), 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if within not in stack:  # the worker waiting for work, the sweeper's thread
                continue
            frames = stack.split(";")
            total += int(count)
            for frame in {short(f) for f in frames}:
                if frame.split(" (", 1)[1].startswith(("core/", "plugins/", "tenants/")):
                    inclusive[frame] += int(count)
            leaves[short(frames[-1])] += int(count)
    if not total:
        return "  no samples"
    lines = [f"  {total:,} samples; inclusive share of Relais functions:"]
    lines += [f"  {100 * c / total:5.1f} %  {f}" for f, c in inclusive.most_common(top)]
    lines += ["  largest leaves (self time):"]
    lines += [f"  {100 * c / total:5.1f} %  {f}" for f, c in leaves.most_common(top)]
    return "\n".join(lines)


def short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("/site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where.split(':')[0]})"  # a function, whichever of its lines


# --- scenario 1: throughput -------------------------------------------------------------------


def relais_throughput(world: World, workers, kind: str = "outbox") -> dict:
    """Scenario 1 with France's SMS routed to ``kind``: the outbox channel, or the loopback
    fake of Infobip or Twilio (bench/providers.py), whose receipts come back over HTTP."""
    n = world.args.messages
    reset_messages(world)
    fake = None
    if kind != "outbox":
        webhooks = start_webhooks(world.config, world.children)
        domain = world.config["SERVER_NAME"]
        fake = FakeProvider.start(kind, webhooks, domain, world.children)
    use_provider(world, kind, fake.settings if fake else None)
    profiler = Profiler(world, workers, world.args.profile) if world.args.profile else None
    parts = {"relais workers": [w.pid for w in workers], "bench (producer)": [os.getpid()]}
    if fake:
        parts["webhooks (gunicorn)"] = process_tree(world.children.running["gunicorn"].pid)
        parts["fake provider"] = [fake.process.pid]
    meter = CpuMeter(parts, world)
    started = datetime.now(UTC)
    clock = time.monotonic()
    label = f"S1 {kind}, {len(workers)} workers"
    send_messages(world.app, world.tenant_id, n, progress=Progress(f"{label}: send_many", n))
    written = time.monotonic() - clock
    wait_finished(world, "campaign", n, f"{label}: handed over", timeout=60 + n / 50)
    cpu = meter.report()
    rss = {w.pid: peak_rss(w.pid) for w in workers}
    handed = HANDED["outbox" if fake is None else "http"]
    figures = relais_figures(world, "campaign", handed)
    profile = profiler.stop(world) if profiler else None
    receipts = wait_receipts(world, n) if fake else None
    if fake:  # the statuses once the reports came back, not while they were on their way
        figures["statuses"] = relais_figures(world, "campaign", handed)["statuses"]
    seen = fake.stop(world.children) if fake else None
    world.children.stop("gunicorn")
    seconds = (figures["last"] - started).total_seconds()
    return {
        "kind": kind,
        "workers": len(workers),
        "n": n,
        "written_tenths": rates_by_tenth(world, WRITTEN, started, "campaign"),
        "handed_tenths": rates_by_tenth(world, handed, started, "campaign"),
        "cpu_ms": {name: 1000 * spent / n for name, spent in meter.spent.items()},
        "worker_rss": max(rss.values(), default=0),
        "rate": n / seconds,
        "seconds": seconds,
        "write_rate": n / written,
        "p50": figures["p50"],
        "p99": figures["p99"],
        "statuses": figures["statuses"],
        "attempts": figures["attempts"],
        "cpu": cpu,
        "profile": profile,
        "receipts": receipts,
        "seen": seen,
    }


def use_provider(world: World, kind: str, values: dict | None) -> None:
    """France's SMS go by ``kind``'s provider alone, with these settings of its plugin."""
    with world.app.app_context(), system_scope():
        db.session.execute(
            sa.delete(ProviderRoute).where(
                ProviderRoute.country_code == "FR", ProviderRoute.channel == "sms"
            )
        )
        db.session.add(
            ProviderRoute(country_code="FR", channel="sms", provider=PROVIDERS[kind], priority=1)
        )
        if values:
            settings.save("FR", PROVIDER_PLUGINS[kind], values)
        db.session.commit()
    # The workers remember a country's routes for CONFIG_SECONDS: sent at once, the first
    # jobs went by the previous scenario's provider (up to 4,000 messages of the Infobip row
    # delivered by the outbox channel, and counted in Infobip's rate).
    time.sleep(world.app.config["CONFIG_SECONDS"] + 1)


def wait_receipts(world: World, n: int, timeout: float = 60.0) -> dict:
    """Until every message's delivery report came back (delivered), at most ``timeout``:
    how many did, and the seconds from the last message handed over to the last report."""
    clock, deadline = time.monotonic(), time.monotonic() + timeout
    delivered = 0
    while time.monotonic() < deadline:
        delivered = world.scalar(
            "SELECT count(*) FROM messages WHERE purpose = 'campaign' AND status = 'delivered'"
        )
        if delivered >= n:
            break
        time.sleep(0.5)
    return {"delivered": delivered, "after": time.monotonic() - clock}


def naive_throughput(world: World, workers) -> dict:
    n = world.args.baseline_messages
    reset_messages(world)
    queue = Queue("naive", connection=world.redis)
    meter = CpuMeter(
        {"rq workers": [w.pid for w in workers], "bench (producer)": [os.getpid()]}, world
    )
    started = datetime.now(UTC)
    progress = Progress("S1 naive: insert + enqueue", n)
    done = 0
    while done < n:
        size = min(TRANSACTION, n - done)
        rows = [
            {"recipient": f"+3361{k % world.args.patients:07d}", "text": CAMPAIGN}
            for k in range(done, done + size)
        ]
        with world.sql.begin() as conn:
            ids = conn.execute(
                sa.text(
                    "INSERT INTO naive_messages (recipient, text)"
                    " SELECT * FROM unnest(CAST(:r AS text[]), CAST(:t AS text[])) RETURNING id"
                ),
                {"r": [r["recipient"] for r in rows], "t": [r["text"] for r in rows]},
            ).scalars()
            ids = list(ids)
        for message_id in ids:  # after the commit, one job per message
            queue.enqueue(naive.send_message, message_id)
        done += size
        progress.update(done)
    progress.finish(done)
    deadline = time.monotonic() + 60 + n / 10
    progress = Progress("S1 naive: delivered", n)
    while True:
        world.children.check()
        sent = world.scalar("SELECT count(*) FROM naive_messages WHERE status = 'sent'")
        progress.update(sent)
        if sent >= n:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"naive: {n - sent:,} messages still waiting")
        time.sleep(0.5)
    progress.finish(sent)
    cpu = meter.report()
    with world.sql.connect() as conn:
        row = (
            conn.execute(
                sa.text(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
                    " d.at - m.created_at)) AS p50, percentile_cont(0.99) WITHIN GROUP"
                    " (ORDER BY extract(epoch FROM d.at - m.created_at)) AS p99, max(d.at) AS last"
                    " FROM naive_messages m JOIN naive_deliveries d ON d.message_id = m.id"
                )
            )
            .mappings()
            .one()
        )
    seconds = (row["last"] - started).total_seconds()
    cpu_ms = {name: 1000 * spent / n for name, spent in meter.spent.items()}
    return {"n": n, "rate": n / seconds, "seconds": seconds, **row, "cpu": cpu, "cpu_ms": cpu_ms}


# --- scenario 2: OTPs during a bulk send ------------------------------------------------------


def otp_during_bulk(world: World) -> dict:
    bulk, otps = world.args.bulk, world.args.otps
    reset_messages(world)
    counter = multiprocessing.get_context("spawn").Value("q", 0)
    started = datetime.now(UTC)
    world.children.spawn(
        "bulk-producer", bulk_producer, world.config, world.tenant_id, bulk, counter
    )
    # The OTPs start once a quarter of the bulk send is written: the workers are busy with it.
    progress = Progress("S2 bulk written (by a process)", bulk)
    deadline = time.monotonic() + 60 + bulk / 200
    while counter.value < bulk // 4:
        if not world.children.running["bulk-producer"].is_alive():
            raise RuntimeError("the bulk producer stopped early")
        if time.monotonic() > deadline:
            raise TimeoutError("the bulk producer is too slow")
        progress.update(counter.value)
        time.sleep(0.05)
    progress.finish(counter.value)
    backlog = []  # bulk messages queued in Redis (jobs x ids a job) when each OTP is sent
    progress = Progress("S2 OTPs, one per 100 ms", otps)
    first = time.monotonic()
    with world.app.app_context(), tenant_scope(world.tenant_id):
        tenant = db.session.get(Tenant, world.tenant_id)
        patients = db.session.scalars(sa.select(Patient).limit(otps)).all()
        for k in range(otps):
            time.sleep(max(0.0, first + 0.1 * k - time.monotonic()))
            backlog.append(world.redis.llen("rq:queue:bulk") * queues.BATCH)
            patient = patients[k % len(patients)]
            outbox.send(
                tenant,
                patient,
                "otp",
                OTP,
                {"code": f"{secrets.randbelow(10**6):06d}"},
                ["sms"],
                expires_at=datetime.now(UTC) + timedelta(minutes=10),
            )
            db.session.commit()  # one OTP per transaction, pushed to the "otp" queue
            progress.update(k + 1, f"bulk queued: {backlog[-1]:,}")
        db.session.remove()
    progress.finish(otps, f"bulk queued: {backlog[-1]:,}")
    wait_finished(world, "otp", otps, "S2 OTPs delivered", timeout=60)
    world.children.running["bulk-producer"].join(60 + bulk / 200)
    world.children.stop("bulk-producer")
    wait_finished(world, "campaign", bulk, "S2 bulk delivered", timeout=60 + bulk / 100)
    otp = relais_figures(world, "otp")
    campaign = relais_figures(world, "campaign")
    seconds = (campaign["last"] - started).total_seconds()
    return {
        "bulk": bulk,
        "otps": otp["n"],
        "p50": otp["p50"],
        "p99": otp["p99"],
        "worst": otp["worst"],
        "backlog_min": min(backlog),
        "backlog_max": max(backlog),
        "bulk_rate": bulk / seconds,
        "statuses": {**campaign["statuses"], **{f"otp {k}": v for k, v in otp["statuses"].items()}},
    }


# --- scenario 3: Redis memory with messages scheduled for later ----------------------------------


def redis_memory(redis: Redis) -> tuple[int, int, int]:
    """(used_memory of the whole server, bytes of this database's keys, number of keys)."""
    used = redis.info("memory")["used_memory"]
    keys = list(redis.scan_iter(count=1000))
    own = 0
    for start in range(0, len(keys), 1000):
        with redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + 1000]:
                pipe.memory_usage(key, samples=0)
            own += sum(size or 0 for size in pipe.execute())
    return used, own, len(keys)


def queued_jobs(redis: Redis) -> int:
    return sum(redis.llen(f"rq:queue:{name}") for name in QUEUES)


def scheduled_memory(world: World) -> dict:
    scheduled, total = world.args.scheduled, max(world.args.scheduled_total, world.args.scheduled)
    reset_messages(world)
    time.sleep(2)  # a sweeper pass or two on the empty outbox
    before = redis_memory(world.redis)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    send_messages(
        world.app,
        world.tenant_id,
        scheduled,
        not_before=tomorrow,
        progress=Progress("S3 scheduled via outbox.send", scheduled),
    )
    if total > scheduled:
        copy_scheduled(world, scheduled, total)
    time.sleep(3)  # the workers' sweepers pass (once a second) over the scheduled messages
    with world.app.app_context():
        clock = time.monotonic()
        counts = sweeper.sweep()
        sweep_seconds = time.monotonic() - clock
        db.session.remove()
    after = redis_memory(world.redis)
    in_database = world.scalar("SELECT count(*) FROM messages WHERE status = 'scheduled'")
    return {
        "scheduled": scheduled,
        "total": total,
        "in_database": in_database,
        "before": before,
        "after": after,
        "queued_jobs": queued_jobs(world.redis),
        "sweep": counts,
        "sweep_seconds": sweep_seconds,
    }


def copy_scheduled(world: World, written: int, total: int) -> None:
    """Top up to ``total`` scheduled messages by copying the rows ``outbox.send`` wrote
    (new ids; their events are not copied): a bulk path for the memory check only."""
    columns = [c.name for c in Message.__table__.columns]
    select = ", ".join("gen_random_uuid()" if c == "id" else f"m.{c}" for c in columns)
    progress = Progress("S3 scheduled via SQL copy", total)
    done = written
    with world.sql.connect() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE originals AS SELECT id FROM messages"))
        conn.commit()
        while done < total:
            size = min(written, total - done, 100_000)
            conn.execute(
                sa.text(
                    f"INSERT INTO messages ({', '.join(columns)}) SELECT {select}"  # noqa: S608
                    " FROM messages m JOIN (SELECT id FROM originals LIMIT :n) o ON o.id = m.id"
                ),
                {"n": size},
            )
            conn.commit()
            done += size
            progress.update(done)
    progress.finish(done)


def naive_scheduled_memory(world: World) -> dict:
    """The naive design schedules with RQ: one job per message in Redis until its time."""
    n = world.args.baseline_scheduled
    world.redis.flushdb()
    before = redis_memory(world.redis)
    queue = Queue("naive", connection=world.redis)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    progress = Progress("S3 naive: enqueue_at", n)
    for k in range(n):
        queue.enqueue_at(tomorrow, naive.send_message, k + 1)
        progress.update(k + 1)
    progress.finish(n)
    after = redis_memory(world.redis)
    world.redis.flushdb()
    return {
        "n": n,
        "per_job": (after[1] - before[1]) / n,
        "used_per_job": (after[0] - before[0]) / n,
    }


# --- the report -------------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""


def table(rows: list[tuple]) -> str:
    header = ("scenario", "metric", "Relais", "baseline", "ratio", "target", "met")
    rows = [header, *rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    line = "+".join("-" * (w + 2) for w in widths)
    out = []
    for k, row in enumerate(rows):
        out.append(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if k == 0:
            out.append(line)
    return "\n".join(out)


TARGETS = {"outbox": TARGET_RATE, "infobip": 1500, "twilio": 500}  # messages/s (issue 14)


def workers(n: int) -> str:
    return f"{n} worker" + ("s" if n != 1 else "")


def side_by_side(runs: list[dict]) -> str:
    """Scenario 1's runs in columns: by provider, and by number of workers."""
    parts = list(dict.fromkeys(name for r in runs for name in r["cpu_ms"]))
    lines = [
        ("", *(f"{r['kind']}, {workers(r['workers'])}" for r in runs)),
        ("messages/s end to end", *(f"{r['rate']:,.0f}/s" for r in runs)),
        ("target", *(f"≥ {TARGETS[r['kind']]:,}/s" for r in runs)),
        ("written by the producer", *(f"{r['write_rate']:,.0f}/s" for r in runs)),
        ("enqueue→provider p50", *(ms(r["p50"]) for r in runs)),
        ("enqueue→provider p99", *(ms(r["p99"]) for r in runs)),
        *(
            (f"CPU ms/message: {name}", *(f"{r['cpu_ms'].get(name, 0):.2f}" for r in runs))
            for name in parts
        ),
        ("peak RSS of a worker", *(size(r["worker_rss"]) for r in runs)),
        (
            "delivery reports back",
            *(
                f"{r['receipts']['delivered']:,} ({r['receipts']['after']:.1f} s after)"
                if r["receipts"]
                else "—"
                for r in runs
            ),
        ),
        (
            "provider took / twice",
            *(
                f"{r['seen'].get('taken', 0):,} / {r['seen'].get('twice')}"
                + (
                    f"; webhooks answered {r['seen']['callbacks']}"
                    if "callbacks" in r["seen"]
                    else ""
                )
                if r["seen"]
                else "—"
                for r in runs
            ),
        ),
        ("statuses", *(" ".join(f"{k} {v:,}" for k, v in r["statuses"].items()) for r in runs)),
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "+".join("-" * (w + 2) for w in widths))
    return "\n".join(out)


def report(world: World, runs, b1, r2, r3, b3) -> str:
    rows, notes = [], []
    r1 = next((r for r in runs or () if r["kind"] == "outbox"), None)
    if r1 and b1:
        ratio = r1["rate"] / b1["rate"]
        ok = r1["rate"] >= TARGET_RATE and ratio >= TARGET_RATIO
        rows.append(
            (
                "1 throughput",
                f"messages/s end to end (N = {r1['n']:,} / {b1['n']:,})",
                f"{r1['rate']:,.0f}/s",
                f"{b1['rate']:,.0f}/s",
                f"{ratio:,.1f}×",
                f"≥ {TARGET_RATE:,}/s and ≥ {TARGET_RATIO}×",
                "yes" if ok else "NO",
            )
        )
        for p in ("p50", "p99"):
            rows.append(
                (
                    "1 throughput",
                    f"enqueue→provider latency {p}",
                    ms(r1[p]),
                    ms(b1[p]),
                    f"{b1[p] / r1[p]:,.1f}× lower" if r1[p] else "—",
                    "",
                    "",
                )
            )
        if b1["n"] != r1["n"]:
            notes.append(
                f"Baseline on {b1['n']:,} messages, Relais on {r1['n']:,}: at ~{b1['rate']:,.0f}/s"
                f" the naive design would take ~{r1['n'] / b1['rate'] / 60:,.0f} min for"
                f" {r1['n']:,}. Its latencies grow with N (the backlog waits in one queue):"
                " on the same N they would be larger still."
            )
        notes.append(
            f"Relais: send_many + commit + push wrote {r1['write_rate']:,.0f} messages/s"
            f" in the benchmark's process; {r1['seconds']:.1f} s end to end;"
            f" statuses {r1['statuses']}, {r1['attempts']:,} attempts recorded."
        )
        notes.append(f"Relais S1 {r1['cpu']}")
        notes.append(
            "Relais S1 CPU per message: "
            + ", ".join(f"{name} {v:.2f} ms" for name, v in r1["cpu_ms"].items())
            + f"; peak RSS of a worker {size(r1['worker_rss'])}"
        )
        tenths = r1["written_tenths"]
        notes.append(
            "Relais S1 messages/s written, per tenth of the run: "
            + " ".join(f"{r:,.0f}" for r in tenths)
            + " (the first tenth is mostly written before the workers take their share of"
            " the cores)"
        )
        tenths = r1["handed_tenths"]  # sending: what must not slow down as tables grow
        flat = len(tenths) == 10 and tenths[-1] >= 0.8 * tenths[0]
        notes.append(
            "Relais S1 messages/s handed to the provider, per tenth of the run: "
            + " ".join(f"{r:,.0f}" for r in tenths)
            + f" (last tenth {100 * tenths[-1] / tenths[0]:.0f} % of the first: "
            + ("flat" if flat else "NOT flat")
            + ", target ≥ 80 %)"
        )
        notes.append(f"Naive S1 {b1['cpu']}")
        notes.append(
            "Naive S1 CPU per message: "
            + ", ".join(f"{name} {v:.2f} ms" for name, v in b1["cpu_ms"].items())
        )
    if r2:
        ok = r2["p99"] is not None and r2["p99"] < TARGET_OTP_P99
        for p in ("p50", "p99"):
            rows.append(
                (
                    "2 OTP during bulk",
                    f"OTP enqueue→provider {p} ({r2['otps']} OTPs, bulk {r2['bulk']:,})",
                    ms(r2[p]),
                    "—",
                    "",
                    f"< {TARGET_OTP_P99 * 1000:.0f} ms" if p == "p99" else "",
                    ("yes" if ok else "NO") if p == "p99" else "",
                )
            )
        rows.append(
            (
                "2 OTP during bulk",
                "bulk drained, messages/s",
                f"{r2['bulk_rate']:,.0f}/s",
                "—",
                "",
                "",
                "",
            )
        )
        notes.append(
            f"S2: bulk messages queued in Redis when each OTP was sent: {r2['backlog_min']:,}"
            f" to {r2['backlog_max']:,}; slowest OTP {ms(r2['worst'])}; statuses {r2['statuses']}."
        )
        if r2["backlog_min"] == 0:
            notes.append(
                "S2: the bulk queue was empty when some OTPs were sent: raise --bulk for a"
                " harder test."
            )
    if r3:
        own = r3["after"][1] - r3["before"][1]
        used = r3["after"][0] - r3["before"][0]
        naive_bytes = b3["per_job"] * r3["total"] if b3 else None
        bounded = own < REDIS_BOUND and r3["queued_jobs"] == 0 and r3["in_database"] >= r3["total"]
        rows.append(
            (
                "3 scheduled",
                f"Redis growth, {r3['total']:,} scheduled for tomorrow",
                f"{size(own)} ({size(used)} server-wide)",
                f"≈ {size(naive_bytes)}" if naive_bytes is not None else "—",
                ("none held" if own <= 0 else f"{naive_bytes / own:,.0f}× less")
                if naive_bytes
                else "",
                "bounded",
                "yes" if bounded else "NO",
            )
        )
        rows.append(
            (
                "3 scheduled",
                "sweeper pass with them in the database",
                ms(r3["sweep_seconds"]),
                "—",
                "",
                "",
                "",
            )
        )
        notes.append(
            f"S3: {r3['scheduled']:,} messages scheduled through outbox.send"
            + (
                f", topped up to {r3['total']:,} by copying rows in SQL (INSERT ... SELECT)"
                if r3["total"] > r3["scheduled"]
                else ""
            )
            + f"; {r3['in_database']:,} scheduled rows in PostgreSQL, {r3['queued_jobs']} jobs"
            f" queued in Redis; Redis keys of the bench database {r3['before'][2]} → "
            f"{r3['after'][2]}; sweep moved {r3['sweep']}. Server-wide used_memory includes"
            " other clients' databases."
        )
        if b3:
            notes.append(
                f"S3 baseline: Queue.enqueue_at for {b3['n']:,} jobs took {b3['per_job']:,.0f}"
                f" bytes of Redis each (used_memory: {b3['used_per_job']:,.0f}); extrapolated to"
                f" {r3['total']:,} scheduled messages."
            )
    for run in runs or ():
        if run is r1:
            continue
        rows.append(
            (
                "1 throughput",
                f"{run['kind']}, {workers(run['workers'])}, messages/s end to end",
                f"{run['rate']:,.0f}/s",
                "—",
                "",
                f"≥ {TARGETS[run['kind']]:,}/s",
                "yes" if run["rate"] >= TARGETS[run["kind"]] else "NO",
            )
        )
    text = table(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    if runs:
        text += "\n\nScenario 1 side by side:\n" + side_by_side(runs)
    return text


# --- main -------------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=20_000, help="scenario 1, Relais")
    parser.add_argument(
        "--baseline-messages",
        type=int,
        default=None,
        help="scenario 1, naive design (default: --messages, at most 2,000: ~50/s)",
    )
    parser.add_argument("--bulk", type=int, default=100_000, help="scenario 2's bulk send")
    parser.add_argument("--otps", type=int, default=50)
    parser.add_argument("--scheduled", type=int, default=100_000, help="via outbox.send")
    parser.add_argument(
        "--scheduled-total", type=int, default=1_000_000, help="topped up by SQL copies"
    )
    parser.add_argument("--baseline-scheduled", type=int, default=10_000)
    parser.add_argument(
        "--only", choices=("1", "2", "3"), action="append", help="run these scenarios only"
    )
    parser.add_argument(
        "--providers",
        type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
        default=["outbox", "infobip", "twilio"],
        help="scenario 1's providers, side by side (default: outbox,infobip,twilio; the HTTP"
        " ones are loopback fakes of their APIs)",
    )
    parser.add_argument(
        "--scale",
        type=lambda text: [int(k) for k in text.split(",") if k.strip()],
        help="scenario 1 again on the outbox with these numbers of workers, e.g. 1,2,4",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the Relais workers in scenario 1")
    parser.add_argument(
        "--analyzed-empty",
        action="store_true",
        help="ANALYZE the emptied outbox tables before each scenario (plans made on empty"
        " tables, kept while they fill: what autovacuum off and an early ANALYZE give)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    unknown = set(args.providers) - set(PROVIDERS)
    if unknown:
        parser.error(
            f"--providers: {', '.join(sorted(unknown))}? Choose among {', '.join(PROVIDERS)}"
        )
    if args.baseline_messages is None:
        args.baseline_messages = min(args.messages, 2000)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    only = set(args.only or ("1", "2", "3"))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    logdir = Path(tempfile.mkdtemp(prefix="relais-bench-"))
    children = Children(logdir)
    world = None
    runs = b1 = r2 = r3 = b3 = None
    load = os.getloadavg()
    try:
        world = build_world(args, children)
        if "1" in only:
            workers = start_naive_workers(world, args.workers)
            b1 = naive_throughput(world, workers)
            stop_workers(world, "rq-worker")
        if "3" in only:
            b3 = naive_scheduled_memory(world)
        world.redis.flushdb()
        workers = start_relais_workers(world, args.workers)
        if "1" in only:
            runs = [relais_throughput(world, workers, kind) for kind in args.providers]
            for count in args.scale or ():  # scale-out: the outbox row with 1, 2, 4... workers
                stop_workers(world, "relais-worker")
                scaled = start_relais_workers(world, count)
                runs.append(relais_throughput(world, scaled, "outbox"))
            if args.scale:
                stop_workers(world, "relais-worker")
                workers = start_relais_workers(world, args.workers)
        if "2" in only:
            r2 = otp_during_bulk(world)
        if "3" in only:
            r3 = scheduled_memory(world)
        stop_workers(world, "relais-worker")
    except KeyboardInterrupt:
        say("\nInterrupted: stopping the processes the benchmark started.")
        return 130
    finally:
        tear_down(children, world, args)
        say(f"Worker logs: {logdir}")
    print()
    print(
        f"Relais delivery benchmark — {os.cpu_count()} CPUs, load average before"
        f" {load[0]:.2f}, after {os.getloadavg()[0]:.2f}; {args.workers} workers each side"
    )
    print()
    print(report(world, runs, b1, r2, r3, b3))
    for run in runs or ():
        if run.get("profile"):
            print(f"\nScenario 1 profiles, {run['kind']} (py-spy raw stacks in {args.profile}):")
            print(run["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
