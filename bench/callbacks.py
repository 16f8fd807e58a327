"""Twilio's status callbacks alone, against the webhooks under gunicorn: CPU per callback.

    python -m bench.callbacks                          # sent, then delivered, 16 at once
    python -m bench.callbacks --statuses delivered --messages 3000 --threads 16

bench.pipeline's webhooks column counts only the callbacks answered while messages were
being handed over; this measures a callback's whole cost. It builds bench.pipeline's world
(its database dropped and recreated), marks ``--messages`` messages sent through Twilio, then
posts their signed callbacks (``--statuses``, each for every message, in that order) to the
webhooks served as bench.pipeline serves them (bench/providers.py), from ``--threads``
kept-alive connections at once. It prints, per status, callbacks/s and the CPU milliseconds
per callback of gunicorn (master and workers) and of PostgreSQL.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.pipeline import (  # noqa: E402
    DATABASE_URL,
    REDIS_URL,
    Children,
    CpuMeter,
    build_world,
    process_tree,
    reset_messages,
    send_messages,
    tear_down,
    use_provider,
)
from bench.providers import start_webhooks  # noqa: E402
from plugins.channels.twilio_api import signature_for  # noqa: E402
from tests.fakes.twilio import status_callback  # noqa: E402

SENDER = "+33939030101"
PATH = "/webhooks/twilio_sms/receipts"


def callbacks(rows, status: str, account: str, token: str, url: str) -> list[tuple]:
    """Twilio's callback of ``status`` for each (sid, phone) of ``rows``: body and headers."""
    made = []
    done = datetime.now(UTC) if status == "delivered" else None
    for sid, phone in rows:
        params = status_callback(account, sid, status, phone, sender=SENDER, done=done)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "X-Twilio-Signature": signature_for(token, url, params.items()),
            "Host": urlsplit(url).netloc,
            "X-Forwarded-Proto": "https",
        }
        made.append((urlencode(params).encode(), headers))
    return made


def post_all(base: str, calls: list[tuple], threads: int) -> dict[int, int]:
    """Post ``calls`` from ``threads`` kept-alive connections; how many got each status."""
    app, answers, lock, pending = urlsplit(base), {}, threading.Lock(), iter(calls)

    def run() -> None:
        connection = HTTPConnection(app.hostname, app.port, timeout=60)
        while True:
            with lock:
                call = next(pending, None)
            if call is None:
                return
            connection.request("POST", PATH, body=call[0], headers=call[1])
            response = connection.getresponse()
            response.read()
            with lock:
                answers[response.status] = answers.get(response.status, 0) + 1

    running = [threading.Thread(target=run) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return answers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callbacks", description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--statuses", default="sent,delivered")
    args = parser.parse_args(argv)
    args.database_url, args.redis_url, args.patients = DATABASE_URL, REDIS_URL, 100
    args.keep = False
    children = Children(Path(tempfile.mkdtemp(prefix="relais-bench-")))
    world = None
    try:
        world = build_world(args, children)
        account, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
        settings = {"account_sid": account, "auth_token": token, "sender": SENDER}
        use_provider(world, "twilio", settings)
        reset_messages(world)
        send_messages(world.app, world.tenant_id, args.messages)
        world.execute(
            "UPDATE messages SET status = 'sent', provider = 'twilio_sms',"
            " provider_ref = 'SM' || md5(id::text), sent_at = now()"
        )
        with world.sql.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT m.provider_ref, p.phone FROM messages m JOIN patients p"
                    " ON p.tenant_id = m.tenant_id AND p.id = m.patient_id"
                )
            ).all()
        base = start_webhooks(world.config, children)
        url = f"https://banc.{world.config['SERVER_NAME']}{PATH}"
        gunicorn = process_tree(children.running["gunicorn"].pid)
        for status in args.statuses.split(","):
            calls = callbacks(rows, status, account, token, url)
            meter = CpuMeter({"gunicorn": gunicorn}, world)
            clock = time.monotonic()
            answers = post_all(base, calls, args.threads)
            wall = time.monotonic() - clock
            meter.report()
            cpu = {name: 1000 * spent / len(calls) for name, spent in meter.spent.items()}
            print(
                f"{status}: {len(calls):,} callbacks in {wall:.1f} s ({len(calls) / wall:.0f}/s,"
                f" answers {answers}); CPU ms a callback: gunicorn {cpu['gunicorn']:.2f},"
                f" PostgreSQL {cpu['postgres']:.2f}"
            )
        delivered = world.scalar("SELECT count(*) FROM messages WHERE status = 'delivered'")
        print(f"delivered: {delivered:,} of {len(rows):,}")
    finally:
        tear_down(children, world, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
