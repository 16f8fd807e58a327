"""The JSON API under load on ONE key (issue 14): requests/s and p50/p99, beside the baseline.

    python -m bench.api                       # 20 s per run, ~2 minutes in all
    python -m bench.api --seconds 10 --batches 20

It builds its own world (see bench/pipeline.py's ``fresh_app``): a PostgreSQL database dropped,
created and migrated (no ANALYZE), its Redis database flushed, a French clinic with the outbox
channel and France's rules, ``--patients`` patients with their SMS consent, and one API key.
Then, against gunicorn on 127.0.0.1 (``--workers`` × ``--threads``, gthread, as
docs/operating.md recommends a deployment run it):

1. ``POST /api/v1/messages`` on the one key for ``--seconds`` with ``--connections``
   kept-alive connections (wrk, from Debian: ``apt-get install wrk``): requests/s, p50, p99;
2. the same with the baseline's per-request write of the key's ``last_used_at`` in the
   request's transaction (what the API did before issue 14: requests on one key queued on
   its row lock), restored in the gunicorn processes only;
3. ``POST /api/v1/messages/batch``: ``--batches`` batches of ``--batch`` messages, from
   ``--batch-clients`` clients at once (bodies built before the clock starts): messages/s.

``--profile DIR`` samples the gunicorn workers with py-spy during run 1 (the thread holding
the GIL: their CPU) and prints where it goes. Every message is a campaign message judged by
France's rules (consent, STOP mention, quiet hours: at night they are deferred, which costs
the same). No worker runs: this measures what the API takes in, not delivery. Every
process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/api.py` as well as `python -m bench.api`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.pipeline import (  # noqa: E402
    Children,
    cpu_of,
    drop_database,
    fresh_app,
    say,
    summarize_profiles,
)
from core.clinic import apikeys, consent, settings  # noqa: E402
from core.clinic.models import ConsentAction, ConsentMethod  # noqa: E402
from core.clinic.patients import create_patient  # noqa: E402
from core.db import db  # noqa: E402
from tenants import provisioning  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.scoping import system_scope, tenant_scope  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_api"
REDIS_URL = "redis://127.0.0.1:6379/13"
PLUGINS = ("plugins.channels.outbox.plugin", "plugins.regulations.fr.plugin")
HOST = "banc.relais.bench"
TEXT = "Bonjour {{ name }}, la vaccination contre la grippe est ouverte au centre."
# The issue's figures (gunicorn 2 workers x 8 threads, 12 client threads, 20 s, one key).
ISSUE_BASELINE = 46.0
TARGET_RATE, TARGET_BATCH = 500, 5000
CONFIG_ENV = "RELAIS_BENCH_API_CONFIG"


def serve(baseline: str = ""):
    """The app gunicorn serves (``bench.api:serve()``), from the bench's config; with
    ``baseline="yes"``, the key's ``last_used_at`` is written by every request in its own
    transaction, as before issue 14."""
    from core.app import create_app, long_lived

    if baseline:

        def every_request(key) -> None:
            # Held locked until the request commits.
            db.session.execute(
                sa.text(
                    "UPDATE api_keys SET last_used_at = now() WHERE tenant_id = :t AND id = :k"
                ),
                {"t": key.tenant_id, "k": key.id},
            )

        apikeys.note_use = every_request
    return long_lived(create_app(json.loads(os.environ[CONFIG_ENV])))


def build(args) -> tuple[dict, object, str, list[str]]:
    """The fresh world: config, app, the key's token and the patients' ids."""
    config, app = fresh_app(args, PLUGINS)
    with app.app_context(), system_scope():
        for plugin in ("outbox", "fr"):
            provisioning.set_country_plugin("FR", plugin, True)
        settings.save("FR", "fr", {"stop_mention": "STOP au 36180"})
        tenant = provisioning.create_tenant("Centre de santé du Banc", "banc", "FR")
        db.session.commit()
        tenant_id = tenant.id
    with app.app_context(), tenant_scope(tenant_id):
        tenant = db.session.get(Tenant, tenant_id)
        ids = []
        for n in range(args.patients):
            patient = create_patient(
                tenant,
                {"first_name": f"Patient{n}", "last_name": "Banc", "phone": f"+3361{n:07d}"},
            )
            consent.record(patient, "sms", ConsentAction.GIVEN, ConsentMethod.PAPER, "bench")
            ids.append(str(patient.id))
        _, token = apikeys.create_key("bench")
        db.session.commit()
    return config, app, token, ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(args, children: Children, config: dict, baseline: bool) -> str:
    """gunicorn on 127.0.0.1 with the bench's app; returns its base URL once it answers."""
    return gunicorn(
        args,
        children,
        "gunicorn-baseline" if baseline else "gunicorn",
        f"bench.api:serve({'yes' if baseline else ''!r})",
        {CONFIG_ENV: json.dumps(config)},
        "/api/v1/patients",
        ["--keep-alive", "30"],
    )


def gunicorn(args, children, name, target, env, probe, extra=()) -> str:
    """gunicorn (``--workers`` x ``--threads``, gthread, ``--reuse-port``) on a free port of
    127.0.0.1 serving ``target``; returns its base URL once ``probe`` answers on the bench's
    clinic host."""
    port = free_port()
    command = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    children.popen(
        name,
        [
            command,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--worker-class",
            "gthread",
            "--reuse-port",  # each worker its own socket: connections spread over them
            *extra,
            target,
        ],
        {**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children.check()
        try:
            httpx.get(f"{url}{probe}", headers={"Host": HOST}, timeout=2)
            return url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"{name} did not answer within 60 s")


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Host"] = "%(host)s"
local bodies = {%(bodies)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/api/v1/messages", nil, bodies[(n %% #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%f %%f %%d\\n", summary.requests,
    summary.duration, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout, latency:percentile(50),
    latency:percentile(99), summary.errors.status))
end
"""


def one_message(patient_id: str, n: int) -> dict:
    return {
        "patient_id": patient_id,
        "purpose": "campaign",
        "template": TEXT,
        "variables": {"name": f"Patient{n}"},
        "channels": ["sms"],
    }


class ServerCpu:
    """CPU seconds spent meanwhile by gunicorn (its master and workers) and by the
    PostgreSQL backends of the bench's database: comparable across runs on a shared machine,
    where requests/s are not."""

    def __init__(self, args, gunicorn) -> None:
        self.sql = sa.create_engine(args.database_url, poolclass=sa.pool.NullPool)
        self.master = gunicorn.pid
        self.before = {"gunicorn": cpu_of(self._gunicorn()), "postgres": cpu_of(self._backends())}

    def _gunicorn(self) -> list[int]:
        pids = [self.master]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.master:
                    pids.append(int(stat.parent.name))
            except (OSError, IndexError, ValueError):
                pass
        return pids

    def _backends(self) -> list[int]:
        with self.sql.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )

    def spent(self) -> tuple[dict[str, float], list[float]]:
        """CPU seconds of each part since this meter started; and each gunicorn worker's
        share of the workers' CPU, the largest first (whether connections reached them all)."""
        now = {"gunicorn": cpu_of(self._gunicorn()), "postgres": cpu_of(self._backends())}
        self.sql.dispose()
        # Backends that started meanwhile count from zero; those gone took their count along.
        each = {
            part: {pid: t - self.before[part].get(pid, 0.0) for pid, t in pids.items()}
            for part, pids in now.items()
        }
        workers = [t for pid, t in each["gunicorn"].items() if pid != self.master]
        shares = sorted((t / (sum(workers) or 1) for t in workers), reverse=True)
        return {part: sum(times.values()) for part, times in each.items()}, shares


def load_single(
    args, url: str, token: str, patients: list[str], logdir: Path, gunicorn=None
) -> dict:
    """wrk on ``POST /api/v1/messages`` with one key: requests/s, p50 and p99 (ms), and the
    CPU milliseconds per request of gunicorn and PostgreSQL."""
    bodies = ", ".join(
        json.dumps(json.dumps(one_message(p, n))) for n, p in enumerate(patients[:200])
    )
    script = logdir / "messages.lua"
    script.write_text(WRK_SCRIPT % {"token": token, "host": HOST, "bodies": bodies})
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    meter = ServerCpu(args, gunicorn) if gunicorn is not None else None
    spies = profile_workers(args, meter) if meter is not None and args.profile else []
    done = subprocess.run(  # noqa: S603 - Debian's wrk
        [
            wrk,
            "--threads",
            str(min(args.connections, 4)),
            "--connections",
            str(args.connections),
            "--duration",
            f"{args.seconds}s",
            "--timeout",
            "10s",
            "--script",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    requests, duration_us, errors, p50, p99, _status = line.split()[1:]
    seconds = int(duration_us) / 1e6
    cpu, spread = meter.spent() if meter is not None else ({}, [])
    profile = stop_profiles(args, spies) if spies else None
    return {
        "profile": profile,
        "requests": int(requests),
        "errors": int(errors),
        "rate": int(requests) / seconds,
        "p50_ms": float(p50) / 1000,
        "p99_ms": float(p99) / 1000,
        "spread": spread,
        **{f"{part}_ms": 1000 * spent / max(int(requests), 1) for part, spent in cpu.items()},
    }


def profile_workers(args, meter: ServerCpu) -> list[tuple[subprocess.Popen, Path]]:
    """py-spy on each gunicorn worker while wrk runs (``--profile DIR``): the thread holding
    the GIL only, so that the samples are the workers' CPU, as raw collapsed stacks."""
    args.profile.mkdir(parents=True, exist_ok=True)
    spy_command = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    spies = []
    for pid in meter._gunicorn()[1:]:  # the workers, not the master
        path = args.profile / f"gunicorn-{pid}.txt"
        command = [spy_command, "record", "--pid", str(pid), "--rate", "250", "--gil"]
        command += ["--nonblocking", "--format", "raw", "-o", str(path)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        spies.append((spy, path))
    return spies


def stop_profiles(args, spies: list[tuple[subprocess.Popen, Path]]) -> str:
    """Stop the py-spy processes of :func:`profile_workers`; their summary."""
    for spy, _path in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for spy, _path in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)
    return summarize_profiles([path for _spy, path in spies], "", top=args.top)


def load_batches(args, url: str, token: str, patients: list[str], gunicorn) -> dict:
    """``--batches`` batches of ``--batch`` messages from ``--batch-clients`` threads, each on
    a kept-alive connection: messages/s, each batch's time, and the CPU milliseconds per
    message of gunicorn and PostgreSQL."""
    bodies = []
    for b in range(args.batches):
        items = []
        for n in range(args.batch):
            item = one_message(patients[(b * args.batch + n) % len(patients)], n)
            items.append({**item, "reference": f"bench-{b}-{n}"})
        bodies.append(json.dumps({"messages": items}).encode())
    headers = {"Authorization": f"Bearer {token}", "Host": HOST, "Content-Type": "application/json"}
    times, accepted, failures = [], [], []
    lock = threading.Lock()
    todo = iter(bodies)

    def client() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            while True:
                with lock:
                    body = next(todo, None)
                if body is None:
                    return
                started = time.perf_counter()
                answer = http.post("/api/v1/messages/batch", content=body)
                took = time.perf_counter() - started
                with lock:
                    if answer.status_code != 202:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                        continue
                    times.append(took)
                    accepted.append(answer.json()["accepted"])

    meter = ServerCpu(args, gunicorn)
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.batch_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu, spread = meter.spent()
    if failures:
        raise RuntimeError(f"{len(failures)} batches refused, e.g. {failures[0]}")
    times.sort()
    return {
        "messages": sum(accepted),
        "rate": sum(accepted) / elapsed,
        "p50_ms": times[len(times) // 2] * 1000,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "spread": spread,
        **{f"{part}_ms": 1000 * spent / max(sum(accepted), 1) for part, spent in cpu.items()},
    }


def shares(spread: list[float]) -> str:
    return " ".join(f"{100 * x:.0f} %" for x in spread)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=16, help="threads per gunicorn worker")
    parser.add_argument("--connections", type=int, default=32, help="wrk's, one key")
    parser.add_argument("--seconds", type=int, default=20, help="per run of wrk")
    parser.add_argument("--batches", type=int, default=30, help="0: no batch run")
    parser.add_argument("--batch", type=int, default=1000, help="messages per batch")
    parser.add_argument(
        "--batch-clients",
        type=int,
        default=8,
        # The kernel spreads connections over the workers' sockets at random: 4 clients all
        # landed on one of 2 workers in 1 run of 8, and the other worker idled.
        help="each on a connection of its own",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="quote the issue's instead")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--profile", type=Path, help="py-spy the gunicorn workers under wrk")
    parser.add_argument("--top", type=int, default=40, help="functions printed per profile")
    args = parser.parse_args(argv)

    logdir = Path(tempfile.mkdtemp(prefix="relais-bench-api-"))
    children = Children(logdir)
    app = None
    try:
        config, app, token, patients = build(args)
        say(f"{args.patients} patients with consent, one key; gunicorn logs in {logdir}")
        url = start_gunicorn(args, children, config, baseline=False)
        say(f"POST /api/v1/messages, {args.connections} connections, {args.seconds} s ...")
        single = load_single(args, url, token, patients, logdir, children.running["gunicorn"])
        batch = None
        if args.batches:
            say(f"POST /api/v1/messages/batch, {args.batches} x {args.batch} ...")
            batch = load_batches(args, url, token, patients, children.running["gunicorn"])
        children.stop("gunicorn")
        if args.skip_baseline:
            base = {"rate": ISSUE_BASELINE, "p50_ms": float("nan"), "p99_ms": float("nan")}
            base_name = "before (issue 14's figure)"
        else:
            url = start_gunicorn(args, children, config, baseline=True)
            say("the same, with the per-request write of last_used_at (before) ...")
            base = load_single(
                args, url, token, patients, logdir, children.running["gunicorn-baseline"]
            )
            base_name = "before: last_used_at per request"
            children.stop("gunicorn-baseline")
        print()
        print(
            f"gunicorn {args.workers} workers x {args.threads} threads, one key, "
            f"{args.connections} connections, {args.seconds} s"
        )
        print(
            f"{'POST /api/v1/messages':<36} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}"
            f" {'CPU ms/request: gunicorn':>25} {'PostgreSQL':>10}"
        )
        for name, row in ((base_name, base), ("now", single)):
            print(
                f"{name:<36} {row['rate']:>9,.0f} {row['p50_ms']:>9.1f} {row['p99_ms']:>9.1f}"
                f" {row.get('gunicorn_ms', float('nan')):>25.2f}"
                f" {row.get('postgres_ms', float('nan')):>10.2f}"
            )
        print(f"  each gunicorn worker's share of their CPU: {shares(single['spread'])}")
        if single.get("errors"):
            print(f"  ({single['errors']} errors)")
        if single.get("profile"):
            print(f"\nThe gunicorn workers under wrk (py-spy raw stacks in {args.profile}):")
            print(single["profile"])
        ratio = single["rate"] / base["rate"] if base["rate"] else float("nan")
        verdict = "met" if single["rate"] >= TARGET_RATE else "NOT met"
        print(f"  {ratio:.1f}x the baseline; target {TARGET_RATE}/s {verdict}")
        if batch is None:
            return
        print()
        print(
            f"POST /api/v1/messages/batch: {batch['messages']:,} messages in batches of "
            f"{args.batch} from {args.batch_clients} clients: {batch['rate']:,.0f} messages/s "
            f"(a batch: p50 {batch['p50_ms']:.0f} ms, p99 {batch['p99_ms']:.0f} ms); "
            f"target {TARGET_BATCH:,}/s {'met' if batch['rate'] >= TARGET_BATCH else 'NOT met'}"
        )
        print(
            f"  CPU ms/message: gunicorn {batch['gunicorn_ms']:.3f}, PostgreSQL "
            f"{batch['postgres_ms']:.3f}; each gunicorn worker's share: {shares(batch['spread'])}"
        )
    finally:
        children.stop_all()
        if app is not None:
            with app.app_context():
                db.engine.dispose()
            if not args.keep:
                drop_database(args.database_url)


if __name__ == "__main__":
    main()
