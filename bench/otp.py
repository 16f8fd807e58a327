"""Sign-up codes over HTTP: request to provider hand-off, alone and while a bulk send drains.

    python -m bench.otp                                 # the full run (100,000 bulk messages)
    python -m bench.otp --codes 60 --bulk 10000         # a quicker one

The figure of the otp issue: "Code request to provider hand-off: p50 and p99, alone and while
a 100,000-message bulk send drains (the pipeline's priority queues). Target p99 < 250 ms
during the bulk send on this machine (2 cores)."

It builds its own world as bench.pipeline does (its own PostgreSQL database and Redis
database, recreated and flushed; a French clinic ``banc`` with ``--patients`` patients; the
otp feature, the sms_twilio channel and a regulation plugin letting every message through,
``bench/open_rules.py``). Every part is real and in a process of its own:

- the app, served over HTTP on 127.0.0.1 by werkzeug's threaded server; each request carries
  the clinic's Host header (``banc.relais.bench``), as a browser behind DNS would;
- two ``relais worker`` processes on Redis, PostgreSQL;
- the provider: the fake Twilio of tests/fakes/twilio.py, a real HTTP server on loopback
  shaped like Twilio's Messages API, reached by the sms_twilio plugin (one HTTP request per
  message, as with Twilio). It posts no status callbacks: receipts come after the hand-off and
  are not measured. ``--provider outbox`` uses the outbox channel instead (bench.pipeline's
  provider: rows in ``outbox_deliveries``, up to 500 messages per call).

A code's latency runs from the moment the client starts its ``POST /me/api/code`` to the
moment the provider takes the message: the fake Twilio creating it (``--provider outbox``:
``outbox_deliveries.at``), both read from this machine's clock. The client sends the codes
on schedule whatever the answers (from a pool of threads), each to a number of its own (a number
gets one code per 30 s and 5 an hour); the per-address limit (otp setting
``codes_per_address``) is raised for the benchmark.

Before phases 1 and 3, a few codes warm the web server and the workers up (first requests
and jobs import, connect and read settings); they are not measured.

1. Alone: ``--codes`` codes, one every ``--interval`` seconds, on idle workers.
2. During bulk: ``--bulk`` campaign messages written by another process (bench.pipeline's
   bulk producer: ``outbox.send`` in transactions of 1,000, pushed to the ``bulk`` queue);
   once a quarter of them is written, the same codes while the workers drain it. The bulk
   backlog (campaign messages written, not yet handed off) is read as codes are requested.
3. Baseline: phase 2 again (``--baseline-bulk`` messages) without the priority queue: the
   codes go to the ``bulk`` queue instead of the ``otp`` queue (bench/fifo.py, imported by
   the web server and the workers, which run as ``python -m bench.fifo worker``), so each
   waits for the campaign queued before it; all else is the same. A code still waiting when
   it expires (5 minutes) is never sent: counted as expired, of infinite latency.

The CPU each part used while the codes were asked is printed, with the whole machine's (other
processes on the machine slow the benchmark down: compare it with the parts' sum).

Every process it starts is stopped at the end, on errors and on Ctrl-C; their logs are kept in
a temporary folder, printed at the end.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/otp.py` as well as `python -m bench.otp`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.pipeline import (  # noqa: E402
    Children,
    CpuMeter,
    Progress,
    World,
    _interrupt,
    build_world,
    bulk_producer,
    ms,
    reset_messages,
    say,
    start_relais_workers,
    stop_workers,
    table,
    tear_down,
    wait_finished,
    wait_for_workers,
)
from core.clinic import settings  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_otp"
REDIS_URL = "redis://127.0.0.1:6379/12"  # bench.pipeline has 14, bench.reminders 13
HOST = "banc.relais.bench"  # the clinic's subdomain of the benchmark's SERVER_NAME
PROVIDERS = {
    "twilio": "plugins.channels.sms_twilio.plugin",
    "outbox": "plugins.channels.outbox.plugin",
}
FEATURES = ("plugins.features.otp.plugin", "bench.open_rules")
TARGET_P99 = 0.250  # seconds, during the bulk send
FIRST_NUMBER = 33619000000  # codes go to +33 6 19 xx xx xx; patients hold +33 6 10 00 0x xx


# --- the provider: a fake Twilio in a process of its own --------------------------------------


def fake_twilio(conn) -> None:
    """Serve a fake Twilio until told to stop; answer the benchmark's questions on ``conn``:
    ``("taken", numbers)`` when each number's first message was taken (``time.time()``),
    ``("count",)`` how many messages and the last one's time, ``("reset",)`` forget them."""
    from tests.fakes.twilio import FakeTwilio

    class HandOffs(FakeTwilio):
        """Notes when it takes each message; posts no status callbacks."""

        def __post_init__(self):
            super().__post_init__()
            self.taken: dict[str, float] = {}
            self.count, self.last = 0, None

        def _take(self, account, form):
            status, payload = super()._take(account, form)
            if status == 201:
                at = time.time()
                with self._lock:
                    self.taken.setdefault(form["To"], at)
                    self.count, self.last = self.count + 1, at
            return status, payload

        def _schedule(self, record, statuses):
            pass  # receipts come after the hand-off: not what is measured

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    fake = HandOffs().start()
    conn.send({"base_url": fake.base_url, "sid": fake.account_sid, "token": fake.auth_token})
    try:
        while True:
            command, *rest = conn.recv()
            if command == "stop":
                break
            with fake._lock:
                if command == "taken":
                    conn.send({n: fake.taken[n] for n in rest[0] if n in fake.taken})
                elif command == "count":
                    conn.send((fake.count, fake.last))
                elif command == "reset":
                    fake.taken.clear()
                    fake.messages.clear()
                    fake.requests.clear()
                    fake.count, fake.last = 0, None
                    conn.send(True)
    finally:
        fake.close()


class Provider:
    """Where and when the provider took the messages, whichever provider it is."""

    def __init__(self, world: World, conn=None) -> None:
        self.world, self.conn = world, conn  # conn: the fake Twilio's pipe; None: the outbox

    def ask(self, *command):
        self.conn.send(command)
        return self.conn.recv()

    def taken(self, numbers: list[str]) -> dict[str, float]:
        """Epoch seconds at which each number's code was handed to the provider."""
        if self.conn is not None:
            return self.ask("taken", numbers)
        with self.world.sql.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT recipient, min(extract(epoch FROM at)) FROM outbox_deliveries"
                    " WHERE recipient = ANY(:n) GROUP BY recipient"
                ),
                {"n": numbers},
            ).all()
        return {to: float(at) for to, at in rows}

    def last_campaign(self) -> float | None:
        """When the provider took the last campaign message (epoch seconds)."""
        if self.conn is not None:
            return self.ask("count")[1]
        last = self.world.scalar(
            "SELECT max(extract(epoch FROM d.at)) FROM outbox_deliveries d JOIN messages m"
            " ON m.tenant_id = d.tenant_id AND m.id = d.message_id WHERE m.purpose = 'campaign'"
        )
        return float(last) if last is not None else None

    def reset(self) -> None:
        if self.conn is not None:
            self.ask("reset")


# --- the web server ---------------------------------------------------------------------------


def serve(config: dict, port, fifo: bool) -> None:
    """The app on 127.0.0.1 (werkzeug's threaded server), until terminated. With ``fifo``,
    codes go to the ``bulk`` queue, behind the campaign: the baseline."""
    from werkzeug.serving import make_server

    from core.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    if fifo:
        import bench.fifo  # noqa: F401 - codes to the bulk queue
    server = make_server("127.0.0.1", 0, create_app(config), threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port.value = server.server_port
    server.serve_forever()


def start_server(world: World, fifo: bool) -> tuple[int, object]:
    port = multiprocessing.get_context("spawn").Value("i", 0)
    process = world.children.spawn("web-server", serve, world.config, port, fifo)
    deadline = time.monotonic() + 60
    while not port.value:
        if not process.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port.value}", headers={"Host": HOST}) as c:
        c.get("/me/login")  # warm: imports, templates, connection pool
    return port.value, process


def start_otp_workers(world: World, count: int) -> list:
    """Workers kept for codes, as docs/operating.md advises: ``relais worker --queue otp``.
    A worker takes its queues in order only between jobs: one busy with a bulk job (100
    messages) makes a code wait for it, so codes get workers of their own."""
    argv = [str(Path(sys.executable).parent / "relais"), "worker", "--queue", "otp"]
    started = [
        world.children.popen(f"otp-worker-{n}", argv, world.worker_env()) for n in range(count)
    ]
    wait_for_workers(world, "otp", world.args.workers + count)
    return started


def start_fifo_workers(world: World, count: int) -> list:
    """The baseline's workers: ``relais worker`` with codes on the bulk queue (bench/fifo.py)."""
    argv = [sys.executable, "-m", "bench.fifo", "worker"]
    started = [
        world.children.popen(f"fifo-worker-{n}", argv, world.worker_env()) for n in range(count)
    ]
    wait_for_workers(world, "otp", count)
    return started


# --- the client -------------------------------------------------------------------------------


def numbers(phase: int, count: int) -> list[str]:
    """Numbers of their own for each phase: no per-number limit between codes."""
    return [f"+{FIRST_NUMBER + phase * 100_000 + k}" for k in range(count)]


class Backlog:
    """Campaign messages written and not yet handed to the provider (pending or being sent),
    read at most every half second. Not Redis' queue length: the sweeper pushes again the
    messages waiting for over 2 minutes, so the queue then holds many ids twice."""

    def __init__(self, world: World) -> None:
        self.world, self.read_at, self.value = world, 0.0, 0

    def now(self) -> int:
        if time.monotonic() - self.read_at >= 0.5:
            self.value = self.world.scalar(
                "SELECT count(*) FROM messages WHERE purpose = 'campaign'"
                " AND status IN ('pending', 'sending')"
            )
            self.read_at = time.monotonic()
        return self.value


def request_codes(world: World, port: int, phones: list[str], label: str) -> list[dict]:
    """``POST /me/api/code`` for each of ``phones``, one every ``--interval`` seconds, each in
    a thread of a pool (the schedule holds whatever the answers); the bulk backlog at each."""
    interval = world.args.interval
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": HOST}, timeout=60)
    rows: list[dict] = []
    lock = threading.Lock()

    def one(phone: str, backlog: int) -> None:
        started = time.time()
        response = client.post("/me/api/code", json={"phone": phone})
        answered = time.time()
        with lock:
            rows.append(
                {
                    "to": phone,
                    "started": started,
                    "answered": answered,
                    "status": response.status_code,
                    "body": response.text[:300],
                    "backlog": backlog,
                }
            )

    progress = Progress(label, len(phones))
    first = time.monotonic()
    bulk = Backlog(world)
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = []
        for k, phone in enumerate(phones):
            time.sleep(max(0.0, first + interval * k - time.monotonic()))
            waiting = bulk.now()
            futures.append(pool.submit(one, phone, waiting))
            progress.update(k + 1, f"bulk waiting: {waiting:,}")
    for future in futures:
        future.result()  # a request that failed fails the benchmark
    progress.finish(len(phones), f"bulk waiting: {waiting:,}")
    client.close()
    refused = [r for r in rows if r["status"] != 202]
    if refused:
        r = refused[0]
        raise RuntimeError(f"{len(refused)} code requests refused, e.g. {r['status']}: {r['body']}")
    return sorted(rows, key=lambda r: r["started"])


# --- the phases -------------------------------------------------------------------------------


def warm_up(world: World, port: int, phase: int, count: int) -> None:
    """A few codes, not measured: each worker's and the web server's first jobs and
    requests import, connect and read settings."""
    reset_messages(world)
    phones = numbers(phase, count)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": HOST}) as client:
        for phone in phones:
            response = client.post("/me/api/code", json={"phone": phone})
            if response.status_code != 202:
                raise RuntimeError(f"warm-up: {response.status_code} {response.text[:300]}")
    wait_finished(world, "otp", count, "warm-up codes handed off", timeout=60)
    reset_messages(world)


def codes_alone(world: World, provider: Provider, port: int, parts: dict) -> dict:
    reset_messages(world)
    provider.reset()
    phones = numbers(0, world.args.codes)
    meter = CpuMeter(parts)
    rows = request_codes(world, port, phones, "1 codes alone")
    wait_finished(world, "otp", len(phones), "1 codes handed off", timeout=60)
    cpu = meter.report()
    return figures(rows, provider.taken(phones)) | {"cpu": cpu}


def codes_during_bulk(
    world: World, provider: Provider, port: int, parts: dict, phase: int, bulk: int, label: str
) -> dict:
    reset_messages(world)
    provider.reset()
    counter = multiprocessing.get_context("spawn").Value("q", 0)
    started = time.time()
    producer = world.children.spawn(
        "bulk-producer", bulk_producer, world.config, world.tenant_id, bulk, counter
    )
    # The codes start once a quarter of the bulk send is written: the workers are busy with it.
    progress = Progress(f"{label}: bulk written", bulk)
    deadline = time.monotonic() + 60 + bulk / 200
    while counter.value < bulk // 4:
        if not producer.is_alive():
            raise RuntimeError("the bulk producer stopped early")
        if time.monotonic() > deadline:
            raise TimeoutError("the bulk producer is too slow")
        progress.update(counter.value)
        time.sleep(0.05)
    progress.finish(counter.value)
    phones = numbers(phase, world.args.codes)
    meter = CpuMeter({**parts, "bulk producer": [producer.pid]})
    rows = request_codes(world, port, phones, f"{label}: codes")
    cpu = meter.report()
    # FIFO: each code waits for the campaign queued before it (at most its 5 minutes).
    wait_finished(world, "otp", len(phones), f"{label}: codes handed off", timeout=400)
    progress = Progress(f"{label}: bulk written", bulk)
    deadline = time.monotonic() + 60 + bulk / 50
    while producer.is_alive():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bulk producer wrote {counter.value:,} of {bulk:,}")
        progress.update(counter.value)
        producer.join(0.5)
    progress.finish(counter.value)
    world.children.stop("bulk-producer")
    if counter.value < bulk:
        raise RuntimeError(f"the bulk producer stopped after {counter.value:,} of {bulk:,}")
    wait_finished(world, "campaign", bulk, f"{label}: bulk handed off", timeout=60 + bulk / 20)
    last = provider.last_campaign()
    with world.sql.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.text("SELECT purpose || ' ' || status, count(*) FROM messages GROUP BY 1")
            ).all()
        )
    return figures(rows, provider.taken(phones)) | {
        "jobs": bulk_jobs(world),
        "bulk": bulk,
        "bulk_rate": bulk / (last - started) if last else None,
        "backlog": [r["backlog"] for r in rows],
        "statuses": statuses,
        "cpu": cpu,
    }


BULK_JOBS = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY held) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY held) AS p99,
       max(held) AS max
FROM (SELECT extract(epoch FROM max(e.at) - m.sent_at) AS held
      FROM messages m
      JOIN message_events e
        ON e.tenant_id = m.tenant_id AND e.message_id = m.id AND e.status = 'sent'
      WHERE m.purpose = 'campaign'
      GROUP BY m.sent_at) AS jobs
"""


def bulk_jobs(world: World) -> dict:
    """How long a bulk job held its worker: from the start of ``deliver`` (``sent_at``, the
    same for every message of a job) to the last of its "sent" records, written as it goes."""
    with world.sql.connect() as conn:
        return {k: float(v) for k, v in conn.execute(sa.text(BULK_JOBS)).mappings().one().items()}


def figures(rows: list[dict], taken: dict[str, float]) -> dict:
    """p50, p99 and max of request-to-hand-off, and of request-to-answer (202)."""
    handoff = [taken.get(r["to"], math.inf) - r["started"] for r in rows]
    answer = [r["answered"] - r["started"] for r in rows]
    return {
        "n": len(rows),
        "p50": percentile(handoff, 0.5),
        "p99": percentile(handoff, 0.99),
        "max": max(handoff),
        "http_p50": percentile(answer, 0.5),
        "http_p99": percentile(answer, 0.99),
        "expired": sum(1 for r in rows if r["to"] not in taken),
    }


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    if math.isinf(high):
        return high
    return low + (high - low) * (position - math.floor(position))


# --- the report -------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    if seconds is not None and math.isinf(seconds):
        return "never (expired)"
    return ms(seconds)


def report(args, alone: dict, bulk: dict | None, fifo: dict | None) -> str:
    rows, notes = [], []
    n = f"{alone['n']} codes, 1 per {args.interval * 1000:.0f} ms"
    for key, name in (("p50", "p50"), ("p99", "p99"), ("max", "max")):
        rows.append(("alone", f"request→provider {name} ({n})", duration(alone[key])))
    for key, name in (("http_p50", "p50"), ("http_p99", "p99")):
        rows.append(("alone", f"request→202 answer {name}", ms(alone[key])))
    rows = [(*r, "—", "", "", "") for r in rows]
    if bulk:
        base = fifo or {}
        met = bulk["p99"] < TARGET_P99
        what = f"bulk {bulk['bulk']:,}"
        for key, name in (("p50", "p50"), ("p99", "p99"), ("max", "max")):
            theirs = base.get(key)
            rows.append(
                (
                    "during bulk",
                    f"request→provider {name} ({what})",
                    duration(bulk[key]),
                    duration(theirs) if theirs is not None else "—",
                    f"{theirs / bulk[key]:,.0f}× lower"
                    if theirs is not None and bulk[key] and not math.isinf(theirs)
                    else "",
                    f"< {TARGET_P99 * 1000:.0f} ms" if key == "p99" else "",
                    ("yes" if met else "NO") if key == "p99" else "",
                )
            )
        for key, name in (("http_p50", "p50"), ("http_p99", "p99")):
            theirs = base.get(key)
            rows.append(
                (
                    "during bulk",
                    f"request→202 answer {name}",
                    ms(bulk[key]),
                    ms(theirs) if theirs is not None else "—",
                    "",
                    "",
                    "",
                )
            )
        rows.append(
            (
                "during bulk",
                "bulk backlog (written, not handed off) at the codes",
                spread(bulk["backlog"]),
                spread(base["backlog"]) if base else "—",
                "",
                "",
                "",
            )
        )
        for key in ("p50", "p99"):
            rows.append(
                (
                    "during bulk",
                    f"a bulk job (100 messages) holds its worker, {key}",
                    ms(bulk["jobs"][key]),
                    ms(base["jobs"][key]) if base else "—",
                    "",
                    "",
                    "",
                )
            )
        rows.append(
            (
                "during bulk",
                "bulk drained (first write → last hand-off)",
                f"{bulk['bulk_rate']:,.0f}/s" if bulk["bulk_rate"] else "—",
                f"{base['bulk_rate']:,.0f}/s" if base.get("bulk_rate") else "—",
                "",
                "",
                "",
            )
        )
        if min(bulk["backlog"]) == 0:
            notes.append(
                "The bulk queue was empty when some codes were asked: raise --bulk for a"
                " harder test."
            )
        notes.append(f"Relais during bulk: statuses {bulk['statuses']}.")
    if fifo:
        notes.append(
            "Baseline: the same run with the codes in the bulk queue (one FIFO queue, each"
            f" code behind the campaign queued before it); {fifo['expired']} of {fifo['n']}"
            f" codes expired before they could leave; statuses {fifo['statuses']}."
        )
    notes.append(f"CPU, codes alone: {alone['cpu']}")
    if bulk:
        notes.append(f"CPU, while the codes were asked during bulk: {bulk['cpu']}")
    if fifo:
        notes.append(f"CPU, baseline, while the codes were asked: {fifo['cpu']}")
    return table(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def spread(values: list[int]) -> str:
    return f"{min(values):,} to {max(values):,} (median {sorted(values)[len(values) // 2]:,})"


# --- main -------------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.otp", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed")
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="twilio")
    parser.add_argument("--patients", type=int, default=1000, help="the campaign's recipients")
    parser.add_argument("--workers", type=int, default=2, help="workers on every queue")
    parser.add_argument(
        "--otp-workers",
        type=int,
        default=1,
        help="workers kept for the otp queue (relais worker --queue otp); the baseline gets as"
        " many more workers on its queues",
    )
    parser.add_argument("--codes", type=int, default=300, help="codes per phase")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between codes")
    parser.add_argument("--bulk", type=int, default=100_000, help="the campaign of phase 2")
    parser.add_argument(
        "--baseline-bulk", type=int, default=None, help="the baseline's (default: --bulk)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip phase 3")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    if args.baseline_bulk is None:
        args.baseline_bulk = args.bulk
    if not 1 <= args.codes <= 100_000:
        parser.error("--codes: from 1 to 100,000 (the numbers of a phase)")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    logdir = Path(tempfile.mkdtemp(prefix="relais-bench-otp-"))
    children = Children(logdir)
    world = None
    alone = bulk = fifo = None
    load = os.getloadavg()
    try:
        provider_conn, twilio = None, None
        if args.provider == "twilio":
            provider_conn, twilio = start_twilio(children)

        def configure() -> None:
            settings.save("FR", "otp", {"codes_per_address": "1000000 per hour"})
            if twilio:
                settings.save(
                    "FR",
                    "sms_twilio",
                    {
                        "account_sid": twilio["sid"],
                        "auth_token": twilio["token"],
                        "sender": "Relais",
                        "base_url": twilio["base_url"],
                    },
                )

        plugins = (PROVIDERS[args.provider], *FEATURES)
        world = build_world(args, children, plugins, configure)
        provider = Provider(world, provider_conn)
        workers = start_relais_workers(world, args.workers)
        workers += start_otp_workers(world, args.otp_workers)
        port, server = start_server(world, fifo=False)
        parts = {
            "web server": [server.pid],
            "relais workers": [w.pid for w in workers],
            "bench (client)": [os.getpid()],
        }
        if provider_conn is not None:
            parts["fake twilio"] = [children.running["fake-twilio"].pid]
        warm_up(world, port, 3, 2 * (args.workers + args.otp_workers) + 2)
        alone = codes_alone(world, provider, port, parts)
        bulk = codes_during_bulk(world, provider, port, parts, 1, args.bulk, "2 during bulk")
        if not args.no_baseline:
            stop_workers(world, "relais-worker")
            stop_workers(world, "otp-worker")
            children.stop("web-server")
            workers = start_fifo_workers(world, args.workers + args.otp_workers)
            port, server = start_server(world, fifo=True)
            parts["web server"] = [server.pid]
            parts["relais workers"] = [w.pid for w in workers]
            warm_up(world, port, 4, 2 * (args.workers + args.otp_workers) + 2)
            fifo = codes_during_bulk(
                world, provider, port, parts, 2, args.baseline_bulk, "3 baseline (FIFO)"
            )
        stop_workers(world, "relais-worker")
        stop_workers(world, "otp-worker")
        stop_workers(world, "fifo-worker")
        if provider_conn is not None:
            provider_conn.send(("stop",))
    except KeyboardInterrupt:
        say("\nInterrupted: stopping the processes the benchmark started.")
        return 130
    finally:
        tear_down(children, world, args)
        say(f"Logs: {logdir}")
    print()
    print(
        f"Relais sign-up codes over HTTP — {os.cpu_count()} CPUs, load average before"
        f" {load[0]:.2f}, after {os.getloadavg()[0]:.2f}; {args.workers} relais workers"
        f" + {args.otp_workers} on the otp queue alone"
        f" (baseline: {args.workers + args.otp_workers} on its queues),"
        f" provider: {describe(args.provider)}"
    )
    print()
    print(report(args, alone, bulk, fifo))
    return 0


def start_twilio(children: Children) -> tuple[object, dict]:
    """The fake Twilio in its own process; its address and credentials."""
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    children.spawn("fake-twilio", fake_twilio, theirs)
    if not ours.poll(60):
        raise TimeoutError("the fake Twilio did not start")
    return ours, ours.recv()


def describe(provider: str) -> str:
    if provider == "twilio":
        return "fake Twilio on loopback (sms_twilio plugin, one HTTP request per message)"
    return "outbox channel (rows in outbox_deliveries)"


if __name__ == "__main__":
    sys.exit(main())
