"""The staff inbox with 1,000,000 messages in the clinic (issue 17): p95 of a page over HTTP
against gunicorn, paginated by keyset (what the inbox does) beside the same pages by OFFSET.

    python -m bench.messaging_inbox                      # 1,000,000 messages, ~3 minutes
    python -m bench.messaging_inbox --messages 100000 --requests 50

It builds its own world (bench/pipeline.py's ``fresh_app``): a PostgreSQL database dropped,
created and migrated, a French clinic with messaging, a practitioner who logs in (password
and authenticator code, as a browser does), ``--patients`` patients, and ``--messages``
messages in conversations of ``--per-conversation`` messages each, written by SQL in a few
statements (one encrypted body, the same for all: only the list is measured), then analyzed
as the sweeper would within a minute of such a load (nothing a deployment would not do).
1 % of the conversations are unread and unhandled.

Then gunicorn on 127.0.0.1 (``--workers`` × ``--threads``) serves ``GET /inbox/`` to one
client, ``--requests`` times at each depth (page 1, 40, 1,000, the last): keyset pages are
reached with the cursor of the row before them (computed once, off the clock); the baseline
gunicorn, patched in its own processes only, lists the same page with ``OFFSET``. Each
request is a whole page: session, menu counters, the list, the template.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pyotp  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.api import HOST, gunicorn  # noqa: E402
from bench.pipeline import (  # noqa: E402
    Children,
    analyze_as_the_sweeper,
    drop_database,
    fresh_app,
    say,
)
from core.clinic.staff import create_user  # noqa: E402
from core.crypto import seal  # noqa: E402
from core.db import db  # noqa: E402
from tenants import provisioning  # noqa: E402
from tenants.scoping import system_scope, tenant_scope  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_inbox"
REDIS_URL = "redis://127.0.0.1:6379/12"
PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.regulations.fr.plugin",
    "plugins.features.messaging.plugin",
)
EMAIL, PASSWORD = "dr.banc@banc.example", "correct horse battery staple"
CONFIG_ENV = "RELAIS_BENCH_INBOX_CONFIG"
PAGE = 25  # plugins.features.messaging.inbox.PAGE_SIZE
TARGET_MS = 100.0


def serve(offset: str = ""):
    """The app gunicorn serves; with ``offset="yes"``, the inbox lists ``?page=N`` with
    OFFSET (the baseline), in these processes only."""
    from flask import request

    from core.app import create_app, long_lived
    from plugins.features.messaging import inbox

    if offset:
        keyset = inbox.page

        def by_offset(user, show="all", patient_id=None, after=None, size=inbox.PAGE_SIZE):
            skip = (int(request.args.get("page", "1")) - 1) * size
            return keyset(user, show, patient_id, None, size, offset=skip)

        inbox.page = by_offset
    return long_lived(create_app(json.loads(os.environ[CONFIG_ENV])))


def fill(args, app, tenant_id) -> None:
    """Patients, conversations and messages by SQL, a few statements each."""
    with app.app_context():
        body = seal("Bonjour docteur, pourriez-vous renouveler mon ordonnance ? Merci.")
        attributes = seal("[]")
    conversations = args.messages // args.per_conversation
    engine = sa.create_engine(args.database_url)
    with engine.begin() as conn:
        params = {"t": tenant_id, "attributes": attributes}
        conn.execute(
            sa.text("""
            INSERT INTO patients (tenant_id, id, first_name, last_name, phone, language,
                timezone, attributes, review_needed, created_at, updated_at)
            SELECT :t, gen_random_uuid(), 'Patient' || n, 'Banc', '+3361' || lpad(n::text, 7, '0'),
                'fr', 'Europe/Paris', :attributes, false, now(), now()
            FROM generate_series(1, :n) AS n"""),
            {**params, "n": args.patients},
        )
        say(f"{args.patients:,} patients")
        conn.execute(
            sa.text("""
            INSERT INTO messaging_conversations (tenant_id, id, patient_id, practitioner_id,
                started_by, reply_mode, created_at, last_message_at, awaiting_staff,
                unread_by_staff)
            SELECT :t, gen_random_uuid(), p.id, :doctor, 'patient', 'until_closed',
                now() - make_interval(mins => n), now() - make_interval(mins => n),
                n % 100 = 0, n % 100 = 0
            FROM generate_series(1, :n) AS n
            JOIN (SELECT id, row_number() OVER () AS k FROM patients WHERE tenant_id = :t) p
                ON p.k = 1 + n % :patients"""),
            {
                "t": tenant_id,
                "doctor": args.doctor_id,
                "n": conversations,
                "patients": args.patients,
            },
        )
        say(f"{conversations:,} conversations")
        conn.execute(
            sa.text("""
            INSERT INTO messaging_messages (tenant_id, id, conversation_id, author, body,
                created_at)
            SELECT :t, gen_random_uuid(), c.id, 'patient', :body,
                c.last_message_at - make_interval(mins => k)
            FROM messaging_conversations c, generate_series(0, :k - 1) AS k
            WHERE c.tenant_id = :t"""),
            {"t": tenant_id, "body": body, "k": args.per_conversation},
        )
        say(f"{conversations * args.per_conversation:,} messages")
    engine.dispose()
    with app.app_context():
        analyze_as_the_sweeper(["patients", "messaging_conversations", "messaging_messages"])


def build(args):
    config, app = fresh_app(args, PLUGINS)
    with app.app_context(), system_scope():
        for plugin in ("outbox", "fr", "messaging"):
            provisioning.set_country_plugin("FR", plugin, True)
        tenant = provisioning.create_tenant("Centre de santé du Banc", "banc", "FR")
        db.session.commit()
        tenant_id = tenant.id
    secret = pyotp.random_base32()
    with app.app_context(), tenant_scope(tenant_id):
        doctor = create_user(EMAIL, "Dr Banc", "practitioner", PASSWORD)
        doctor.totp_secret, doctor.totp_enrolled = secret, True
        db.session.commit()
        args.doctor_id = doctor.id
    fill(args, app, tenant_id)
    return config, app, tenant_id, secret


class Browser:
    """A staff member's browser on the bench's gunicorn: the Host header of the clinic, the
    session cookie kept by hand (the jar would not send it to 127.0.0.1)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Host": HOST}, timeout=60)
        self.cookie = ""

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Cookie": f"session={self.cookie}"} if self.cookie else {}
        answer = self.http.request(method, path, headers=headers, **kwargs)
        self.cookie = answer.cookies.get("session") or self.cookie
        return answer

    def token(self, path: str) -> str:
        page = self.request("GET", path).text
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def log_in(self, secret: str) -> None:
        form = {"email": EMAIL, "password": PASSWORD, "csrf_token": self.token("/login")}
        assert self.request("POST", "/login", data=form).status_code == 302
        code = {"code": pyotp.TOTP(secret).now(), "csrf_token": self.token("/login/code")}
        assert self.request("POST", "/login/code", data=code).status_code == 302


def start_gunicorn(args, children: Children, config: dict, offset: bool) -> str:
    return gunicorn(
        args,
        children,
        "gunicorn-offset" if offset else "gunicorn",
        f"bench.messaging_inbox:serve({'yes' if offset else ''!r})",
        {CONFIG_ENV: json.dumps(config)},
        "/login",
    )


def cursors(args, app, tenant_id, pages: list[int]) -> dict[int, str | None]:
    """The keyset cursor that leads to each page (the row just before it), off the clock."""
    from plugins.features.messaging.inbox import cursor

    found = {}
    engine = sa.create_engine(args.database_url)
    with engine.connect() as conn:
        for page in pages:
            if page == 1:
                found[page] = None
                continue
            row = conn.execute(
                sa.text(
                    "SELECT last_message_at, id FROM messaging_conversations WHERE tenant_id = :t"
                    " ORDER BY last_message_at DESC, id DESC OFFSET :o LIMIT 1"
                ),
                {"t": tenant_id, "o": (page - 1) * PAGE - 1},
            ).one()
            with app.app_context():
                found[page] = cursor(row[0], row[1])
    engine.dispose()
    return found


def measure(browser: Browser, paths: list[str], requests: int) -> dict:
    """Each path ``requests`` times, in turn: p50, p95, max (ms)."""
    times = []
    for _ in range(requests):
        for path in paths:
            started = time.perf_counter()
            answer = browser.request("GET", path)
            times.append(time.perf_counter() - started)
            if answer.status_code != 200 or "<time datetime" not in answer.text:
                raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    times.sort()
    return {
        "p50": times[len(times) // 2] * 1000,
        "p95": times[int(len(times) * 0.95)] * 1000,
        "max": times[-1] * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--per-conversation", type=int, default=5)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--requests", type=int, default=100, help="per page and mode")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    logdir = Path(tempfile.mkdtemp(prefix="relais-bench-inbox-"))
    children = Children(logdir)
    app = None
    try:
        config, app, tenant_id, secret = build(args)
        last = args.messages // args.per_conversation // PAGE
        pages = sorted({1, 40, 1000, last} & set(range(1, last + 1)))
        leads = cursors(args, app, tenant_id, pages)
        rows = []
        cookie = ""
        for offset in (False, True):
            url = start_gunicorn(args, children, config, offset)
            browser = Browser(url)
            browser.cookie = cookie  # one login (a code is good once): the same session
            if not cookie:
                browser.log_in(secret)
                cookie = browser.cookie
            for page in pages:
                if offset:
                    path = f"/inbox/?page={page}"
                else:
                    path = f"/inbox/?after={leads[page]}" if leads[page] else "/inbox/"
                browser.request("GET", path)  # warm: the worker's first request, caches
                say(f"{'OFFSET' if offset else 'keyset'} page {page:,} ...")
                rows.append(
                    (
                        "OFFSET" if offset else "keyset",
                        page,
                        measure(browser, [path], args.requests),
                    )
                )
            children.stop("gunicorn-offset" if offset else "gunicorn")
        print()
        print(
            f"GET /inbox/ over HTTP, gunicorn {args.workers} workers x {args.threads} threads, "
            f"{args.messages:,} messages in {args.messages // args.per_conversation:,} "
            f"conversations, {args.requests} requests a row"
        )
        print(f"{'pagination':<10} {'page':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for mode, page, r in rows:
            print(f"{mode:<10} {page:>7,} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['max']:>8.1f}")
        worst = max(r["p95"] for mode, _p, r in rows if mode == "keyset")
        verdict = "met" if worst < TARGET_MS else "NOT met"
        print(f"keyset: worst p95 {worst:.1f} ms; target p95 < {TARGET_MS:.0f} ms {verdict}")
    finally:
        children.stop_all()
        if app is not None:
            with app.app_context():
                db.engine.dispose()
        if not args.keep:
            drop_database(args.database_url)


if __name__ == "__main__":
    main()
