"""How long the delivery KPIs take on a large outbox: ``python -m bench.kpis --messages N``.

Fills a database of its own (``relais_bench_kpis``, dropped and migrated again) with N
messages spread over the last ``--days`` days across clinics of the four countries, SMS and
e-mail on several providers, 97.5 % of those sent delivered with a log-normal time to reception,
one attempt per message and a few temporary failures; then times, on PostgreSQL, what the
console page (``/kpis``: one aggregate pass over the messages, one over the attempts), the JSON and
``/metrics`` run, for windows of five minutes to seven days. With ``--index`` it times again
after adding an index on ``messages (created_at)``, to show what it buys.
"""

import argparse
import statistics
import time
from datetime import timedelta

import sqlalchemy as sa

from bench.pipeline import analyze_as_the_sweeper
from core.app import create_app
from core.db import db, utcnow
from core.delivery import kpis, metrics
from core.schema import upgrade
from tenants import provisioning
from tenants.scoping import system_scope

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_kpis"
CONFIG = {
    "DATABASE_URL": URL,
    "SECRET_KEY": "bench",
    "ENCRYPTION_KEYS": "uG1pZrSHn5QqvT0u0z0Ic3l6p1m5hWc4kLJj1b4yP3E=",
    "SERVER_NAME": "relais.bench",
    "REDIS_URL": None,
}
CLINICS_PER_COUNTRY = 25

FILL = """
INSERT INTO messages (tenant_id, id, patient_id, purpose, status, channels, channel_index,
    provider, provider_ref, exhausted, tries, content, verdict, created_at, sent_at,
    delivered_at, finished_at)
SELECT t.tenant_id, gen_random_uuid(), t.patient_id,
    CASE WHEN n % 10 = 0 THEN 'otp' ELSE 'reminder' END,
    CASE WHEN n % 200 = 0 THEN 'failed'
         WHEN n % 40 = 1 THEN 'undelivered'
         WHEN n % 97 = 2 THEN 'sent'
         ELSE 'delivered' END,
    CASE WHEN n % 5 = 0 THEN '["email"]' ELSE '["sms"]' END::json, 0,
    CASE WHEN n % 200 = 0 THEN NULL WHEN n % 5 = 0 THEN 'smtp_email'
         WHEN n % 3 = 0 THEN 'sms_infobip' ELSE 'sms_twilio' END,
    NULL, '[]'::json, 0, 'bench', 'allow', c.at, c.at + interval '150 ms',
    CASE WHEN n % 200 <> 0 AND n % 40 <> 1 AND n % 97 <> 2
         THEN c.at + make_interval(secs => exp(0.6 + 0.55 * sqrt(-2 * ln(1 - random()))
                                              * cos(2 * pi() * random()))) END,
    c.at + interval '3 s'
FROM (SELECT n, now() - :days * interval '1 day' * random() AS at
      FROM generate_series(1, :count) AS n) AS c
JOIN bench_clinics AS t ON t.k = c.n % :clinics
"""

ATTEMPTS = """
INSERT INTO attempts (tenant_id, id, message_id, at, channel, provider, outcome, latency_ms)
SELECT tenant_id, gen_random_uuid(), id, created_at + interval '100 ms', channels ->> 0,
    provider, 'accepted', 120
FROM messages WHERE provider IS NOT NULL
UNION ALL
SELECT tenant_id, gen_random_uuid(), id, created_at + interval '50 ms', channels ->> 0,
    provider, 'temporary', 10000
FROM messages WHERE provider IS NOT NULL AND random() < 0.01
"""


def recreate_database() -> None:
    target = sa.make_url(URL)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def drop_database() -> None:
    target = sa.make_url(URL)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    admin.dispose()


def fill(app, count: int, days: int) -> None:
    with app.app_context(), system_scope():
        codes = [c.code for c in provisioning.countries()]
        for code in codes:
            for i in range(CLINICS_PER_COUNTRY):
                provisioning.create_tenant(f"Clinic {code} {i}", f"c-{code.lower()}-{i}", code)
        db.session.commit()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("""
                INSERT INTO patients (tenant_id, id, first_name, last_name, language, timezone,
                    attributes, created_at, updated_at)
                SELECT id, gen_random_uuid(), 'x', 'y', 'fr', timezone, 'x', now(), now()
                FROM tenants
            """)
            conn.exec_driver_sql("""
                CREATE TEMP TABLE bench_clinics AS
                SELECT row_number() OVER (ORDER BY t.id) - 1 AS k, t.id AS tenant_id,
                       p.id AS patient_id
                FROM tenants t JOIN patients p ON p.tenant_id = t.id
            """)
            clinics = conn.scalar(sa.text("SELECT count(*) FROM bench_clinics"))
            started = time.perf_counter()
            done = 0
            while done < count:  # in slices, to keep each statement's memory modest
                step = min(500_000, count - done)
                conn.execute(sa.text(FILL), {"count": step, "days": days, "clinics": clinics})
                done += step
            conn.exec_driver_sql(ATTEMPTS)
            print(f"filled {count:,} messages in {time.perf_counter() - started:.1f} s")
        analyze_as_the_sweeper(["messages", "attempts"])


def timed(function, repeat: int = 3) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def measure(app, label: str) -> None:
    print(f"\n{label}: median of 3 runs, ms")
    print(f"{'window':>8} | {'page (/kpis)':>12} | {'JSON, 1 group':>13} | {'/metrics':>8}")
    with app.app_context(), system_scope():
        now = utcnow()
        windows = {
            "5 min": timedelta(minutes=5),
            "1 hour": timedelta(hours=1),
            "1 day": timedelta(days=1),
            "7 days": timedelta(days=7),
        }
        for name, span in windows.items():
            start = now - span

            def page(start=start):  # what /kpis runs
                kpis.kpi_tables(start, now, [(g,) for g in kpis.GROUPS] + [()])

            def one(start=start):  # what /kpis.json?group=channel runs
                kpis.kpi_tables(start, now, [("channel",), ()])

            scrape = "" if span > metrics.WINDOW else f"{timed(_scrape_once(now)):8.0f}"
            print(f"{name:>8} | {timed(page):12.0f} | {timed(one):13.0f} | {scrape:>8}")
        (week,) = kpis.delivery_kpis(now - timedelta(days=7), now)
        print(
            f"7 days: {week.sent:,} sent, rate {week.delivery_rate:.3%}, mean {week.mean_s:.2f} s,"
            f" p50 {week.p50_s:.2f} s, p95 {week.p95_s:.2f} s, p99 {week.p99_s:.2f} s,"
            f" within 5 s {week.within_share:.2%}, availability {week.availability:.2%}"
        )


def _scrape_once(now):
    def scrape():
        list(metrics.DeliveryCollector(now).collect())

    return scrape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--index", action="store_true", help="then time with an index")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    recreate_database()
    app = create_app(CONFIG)
    with app.app_context():
        upgrade()
    try:
        fill(app, args.messages, args.days)
        measure(app, f"{args.messages:,} messages over {args.days} days, as migrated")
        if args.index:
            with app.app_context(), db.engine.begin() as conn:
                conn.exec_driver_sql("CREATE INDEX bench_messages_created ON messages (created_at)")
            measure(app, "with an index on messages (created_at)")
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    main()
