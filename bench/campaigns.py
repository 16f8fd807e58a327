"""A campaign to --scale patients, from "start" to every message handed to the loopback
provider (the outbox channel), and the naive design on --naive patients side by side
(issue 18, "Performance").

    python -m bench.campaigns                          # 500,000 recipients, naive 20,000
    python -m bench.campaigns --scale 20000 --naive 2000

It builds its own world as bench/pipeline.py does (a PostgreSQL database dropped, created
and migrated; a Redis database flushed; the outbox channel; a regulation plugin letting every
message through at any hour, bench/open_rules.py), then writes the clinic's patients in SQL
(``--scale`` in the segment: a long-term condition, encrypted, and a consent to SMS; a tenth
more outside it), starts ``--workers`` ``relais worker`` processes and:

1. Relais: ``service.start`` of a campaign on the segment (attributes through their keyed
   index); the plan and chunk jobs on the ``bulk`` queue write the messages with
   ``send_many``, the workers hand them to the outbox channel. Measured: seconds from start to
   the last message handed over, messages/s, each worker's peak RSS.
2. Naive: the same text to ``--naive`` patients, one ``outbox.send`` and one commit (so one
   RQ job) per recipient, by the same workers.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.pipeline import (  # noqa: E402
    OTP,
    Children,
    Progress,
    analyze_as_the_sweeper,
    build_world,
    peak_rss,
    relais_figures,
    say,
    start_relais_workers,
    tear_down,
    wait_finished,
)
from core.clinic import settings  # noqa: E402
from core.clinic.attribute_index import tokens  # noqa: E402
from core.clinic.models import Patient  # noqa: E402
from core.crypto import seal  # noqa: E402
from core.db import db  # noqa: E402
from core.delivery import outbox  # noqa: E402
from plugins.features.campaigns import service  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.scoping import tenant_scope  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/relais_bench_campaigns"
REDIS_URL = (
    "redis://127.0.0.1:6379/15"  # 12 otp and messaging_inbox, 13 reminders and api, 14 pipeline
)
PLUGINS = (
    "plugins.channels.outbox.plugin",
    "bench.open_rules",
    "plugins.features.campaigns.plugin",
)
TEXT = (
    "Bonjour {{ patient }}, {{ clinic }} ouvre la vaccination contre la grippe. "
    "Prenez rendez-vous en ligne. STOP au 36180"
)
ATTRIBUTE = "long_term_condition"
# Messages handed to the outbox channel, every one a campaign's but the codes sent meanwhile
# (counted apart): one table, not a join of two growing ones, polled once a second, so that
# watching the run costs the run little.
HANDED = "SELECT count(*) FROM outbox_deliveries"


def configure() -> None:
    settings.save("FR", "outbox", {"report_delivery": "no"})


def write_patients(world, scale: int) -> None:
    """``scale`` patients in the segment and a tenth more outside it, in SQL: their
    attributes sealed as the app seals them (one ciphertext each kind), their tokens, and a
    consent to SMS for those in the segment."""
    outside = scale // 10
    with world.app.app_context():
        sealed_in, sealed_out = seal(json.dumps([ATTRIBUTE])), seal("[]")
        token = tokens(world.tenant_id, [ATTRIBUTE])
    started = time.monotonic()
    world.execute(
        """
        INSERT INTO patients (tenant_id, id, first_name, last_name, phone, birth_date, language,
            timezone, attributes, attribute_tokens, review_needed, created_at, updated_at)
        SELECT :t, gen_random_uuid(), 'Patient' || n, 'Banc', '+3361' || lpad(n::text, 7, '0'),
            date '1940-01-01' + (n % 20000), 'fr', 'Europe/Paris',
            CASE WHEN n <= :scale THEN :a_in ELSE :a_out END,
            CASE WHEN n <= :scale THEN CAST(:tok AS varchar(16)[]) ELSE '{}' END,
            false, now(), now()
        FROM generate_series(1, :total) AS n
        """,
        t=world.tenant_id,
        scale=scale,
        total=scale + outside,
        a_in=sealed_in,
        a_out=sealed_out,
        tok=token,
    )
    world.execute(
        """
        INSERT INTO consents (tenant_id, id, patient_id, channel, purpose, action, method,
            actor, at)
        SELECT tenant_id, gen_random_uuid(), id, 'sms', 'non_essential', 'given', 'paper',
            'bench', now()
        FROM patients WHERE tenant_id = :t AND cardinality(attribute_tokens) > 0
        """,
        t=world.tenant_id,
    )
    with world.app.app_context():
        analyze_as_the_sweeper(["patients", "consents"])
    say(
        f"{scale + outside:,} patients and {scale:,} consents written in SQL in "
        f"{time.monotonic() - started:.1f} s"
    )


def wait_handed(world, total: int, label: str, workers, timeout: float, others: int = 0) -> float:
    """Seconds until ``total`` campaign messages were handed to the outbox channel (with
    ``others`` messages handed besides them)."""
    progress = Progress(label, total)
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while True:
        world.children.check()
        done = world.scalar(HANDED) - others
        progress.update(done)
        if done >= total:
            progress.finish(done)
            return time.monotonic() - started
        if time.monotonic() > deadline:
            progress.finish(done)
            raise TimeoutError(f"{label}: {done:,} of {total:,} after {timeout:.0f} s")
        time.sleep(1.0)


def relais_campaign(world, scale: int, workers, otps: int = 0) -> dict:
    with world.app.app_context(), tenant_scope(world.tenant_id):
        tenant = db.session.get(Tenant, world.tenant_id)
        campaign = service.save(
            tenant,
            {
                "name": "Grippe",
                "channels": ["sms"],
                "default_language": "fr",
                "template_fr": TEXT,
                "attributes": [ATTRIBUTE],
            },
            by="bench",
        )
        db.session.commit()
        counted_at = time.monotonic()
        counted = service.count(tenant, campaign)
        count_seconds = time.monotonic() - counted_at
        assert counted["recipients"] == scale, counted
        t0 = time.monotonic()
        service.start(tenant, campaign)  # checks, commits, queues the plan
        campaign_id = campaign.id
        db.session.remove()
    otp = otps_while_running(world, scale, otps) if otps else None
    wait_handed(world, scale, "campaign", workers, 3600, otps if otp else 0)
    seconds = time.monotonic() - t0  # from "start", the codes sent meanwhile included
    with world.app.app_context(), tenant_scope(world.tenant_id):
        state = db.session.get(service.Campaign, (world.tenant_id, campaign_id)).state
    return {
        "seconds": seconds,
        "count_seconds": count_seconds,
        "rate": scale / seconds,
        "state": state,
        "rss": [peak_rss(p.pid) for p in workers],
        "otp": otp,
    }


def otps_while_running(world, scale: int, count: int) -> dict:
    """Sign-up codes sent one every 100 ms once a tenth of the campaign was handed over (the
    workers busy with it), measured as bench.pipeline measures them: from the code's write to
    its hand-over to the provider."""
    while world.scalar(HANDED) < scale // 10:
        world.children.check()
        time.sleep(0.2)
    first = time.monotonic()
    with world.app.app_context(), tenant_scope(world.tenant_id):
        tenant = db.session.get(Tenant, world.tenant_id)
        patients = db.session.scalars(sa.select(Patient).limit(count)).all()
        for k in range(count):
            time.sleep(max(0.0, first + 0.1 * k - time.monotonic()))
            outbox.send(
                tenant,
                patients[k % len(patients)],
                "otp",
                OTP,
                {"code": f"{secrets.randbelow(10**6):06d}"},
                ["sms"],
                expires_at=datetime.now(UTC) + timedelta(minutes=10),
            )
            db.session.commit()  # one code per transaction, pushed to the "otp" queue
        db.session.remove()
    wait_finished(world, "otp", count, "codes delivered", timeout=120)
    return relais_figures(world, "otp")


def naive_campaign(world, count: int, workers) -> dict:
    """One ``outbox.send`` and one commit (one RQ job) per recipient."""
    world.execute(
        "TRUNCATE messages, message_events, attempts, outbox_deliveries, campaign_recipients,"
        " campaign_chunks, campaigns CASCADE"
    )
    with world.app.app_context(), tenant_scope(world.tenant_id):
        tenant = db.session.get(Tenant, world.tenant_id)
        ids = db.session.scalars(
            sa.select(Patient.id).where(Patient.phone.isnot(None)).order_by(Patient.id).limit(count)
        ).all()
        t0 = time.monotonic()
        progress = Progress("naive: writing", count)
        for n, patient_id in enumerate(ids):
            patient = db.session.get(Patient, (world.tenant_id, patient_id))
            outbox.send(
                tenant,
                patient,
                "campaign",
                TEXT,
                {"patient": patient.first_name, "clinic": tenant.name},
                ["sms"],
            )
            db.session.commit()  # its id is pushed to Redis: one job per message
            progress.update(n + 1)
        progress.finish(count)
        db.session.remove()
    seconds = time.monotonic() - t0
    seconds += wait_handed(world, count, "naive: handed", workers, timeout=3600)
    return {"seconds": seconds, "rate": count / seconds}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and recreated")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed")
    parser.add_argument("--scale", type=int, default=500_000, help="the campaign's recipients")
    parser.add_argument("--naive", type=int, default=20_000, help="the naive design's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--otps", type=int, default=50, help="codes sent while it runs")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    args.patients = 0  # build_world's own patients: none (written in SQL here)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    children = Children(Path(tempfile.mkdtemp(prefix="bench-campaigns-")))
    world = None
    try:
        world = build_world(args, children, PLUGINS, configure)
        write_patients(world, args.scale)
        workers = start_relais_workers(world, args.workers)
        relais = relais_campaign(world, args.scale, workers, args.otps)
        naive = naive_campaign(world, min(args.naive, args.scale), workers)
    finally:
        tear_down(children, world, args)
    rss = ", ".join(f"{r / 2**20:.0f} MB" for r in relais["rss"])
    print(f"\nCampaign to {args.scale:,} recipients, {args.workers} workers:")
    print(f"  live count of the segment: {relais['count_seconds'] * 1000:.0f} ms")
    print(
        f"  start -> all handed to the provider: {relais['seconds']:.1f} s"
        f" ({relais['rate']:,.0f} messages/s; target: 500,000 in under 300 s), "
        f"state {relais['state']}"
    )
    print(f"  worker peak RSS: {rss} (target: under 500 MB)")
    if relais["otp"]:
        otp = relais["otp"]
        print(
            f"  {otp['n']} sign-up codes meanwhile: p50 {otp['p50'] * 1000:.0f} ms,"
            f" p99 {otp['p99'] * 1000:.0f} ms (target: p99 under 250 ms)"
        )
    print(
        f"Naive (one outbox.send and one RQ job per recipient), {min(args.naive, args.scale):,}:"
        f" {naive['seconds']:.1f} s ({naive['rate']:,.0f} messages/s)"
    )
    print(f"  Relais is {relais['rate'] / naive['rate']:.1f}x the naive design's rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
