"""The bulk write path features fan out through (``send_many``, ``send_in_parts``): each
message written as judged, parts committed before they are queued, and a producer killed
midway loses nothing it committed and writes nothing twice when started again."""

import signal
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from redis import Redis
from rq import Queue

from core.clinic import consent
from core.clinic.models import ConsentAction, ConsentMethod, Patient
from core.db import db
from core.delivery import outbox, queues
from core.delivery.jobs import QUEUES
from core.delivery.models import Message, MessageEvent
from core.errors import ValidationError
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import (
    OPEN_HOURS,
    REDIS_URL,
    ROOT,
    TEST_CONFIG,
    consent_to_campaigns,
    make_clinic,
    make_patient,
    process_env,
)

PLUGINS = ("plugins.channels.outbox.plugin", "plugins.regulations.fr.plugin")


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("outbox", "fr"))


def test_each_message_of_a_batch_is_written_with_its_own_verdict(app, clinic):
    """Allowed, deferred (a reminder for later) and denied by an opt-out, in one batch."""
    willing = make_patient(app, clinic)
    consent_to_campaigns(app, clinic, willing)
    opted_out = make_patient(app, clinic, first_name="Zoé", phone="0622222222")
    consent_to_campaigns(app, clinic, opted_out)
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, opted_out.id))
        consent.record(who, "sms", ConsentAction.WITHDRAWN, ConsentMethod.SMS_REPLY, "patient")
        db.session.commit()
    later = OPEN_HOURS + timedelta(hours=3)
    with time_machine.travel(OPEN_HOURS, tick=False), app.app_context(), tenant_scope(clinic.id):
        people = [db.session.get(Patient, (clinic.id, p.id)) for p in (willing, opted_out)]
        results = outbox.send_many(
            clinic,
            [
                {"patient": people[0], "purpose": "campaign", "template": "La grippe"},
                {"patient": people[1], "purpose": "campaign", "template": "La grippe"},
                {
                    "patient": people[1],
                    "purpose": "reminder",
                    "template": "RDV",
                    "not_before": later,
                },
                {"patient": people[0], "purpose": "spam", "template": "RDV"},
            ],
        )
        db.session.commit()
        stored = {
            m.id: m
            for m in db.session.scalars(
                sa.select(Message).execution_options(populate_existing=True)
            )
        }
        steps = dict(
            db.session.execute(sa.select(MessageEvent.message_id, MessageEvent.status)).all()
        )
    assert isinstance(results[3], ValidationError) and results[3].field == "purpose"
    assert len(stored) == 3  # the refused draft is not written, the others are
    allowed, denied, deferred = (stored[r.id] for r in results[:3])
    assert (allowed.status, allowed.verdict) == ("pending", "amend")  # its STOP mention added
    assert allowed.content["text"].endswith("STOP au 36180")
    assert (denied.status, denied.verdict) == ("denied", "deny")
    assert "opted out of SMS" in denied.verdict_reason
    assert (deferred.status, deferred.next_attempt_at) == ("scheduled", later)
    assert [steps[r.id] for r in results[:3]] == ["pending", "denied", "scheduled"]


def test_a_fan_out_larger_than_a_transaction_is_queued_part_by_part_after_each_commit(
    app, clinic, monkeypatch
):
    patients = [make_patient(app, clinic, phone=f"06000000{n:02d}") for n in range(5)]
    committed = sa.create_engine(TEST_CONFIG["DATABASE_URL"])  # another connection's view
    pushed = []

    def push(due):
        with committed.connect() as conn:
            seen = conn.execute(
                sa.select(sa.func.count())
                .select_from(Message.__table__)
                .where(Message.__table__.c.id.in_([message_id for _t, _q, message_id in due]))
            ).scalar()
        pushed.append((len(due), seen))
        return 1

    monkeypatch.setattr(queues, "push", push)
    try:
        with app.app_context(), tenant_scope(clinic.id):
            people = [db.session.get(Patient, (clinic.id, p.id)) for p in patients]
            drafts = [{"patient": p, "purpose": "reminder", "template": "RDV"} for p in people]
            results = outbox.send_in_parts(clinic, drafts, part=2)
    finally:
        committed.dispose()

    assert [r.status for r in results] == ["pending"] * 5
    # Three transactions (2, 2, 1): each part's ids reached Redis once it was committed,
    # never before (a worker finds every row it is given).
    assert pushed == [(2, 2), (2, 2), (1, 1)]


PRODUCER = textwrap.dedent(
    """
    import sys, time, uuid
    import sqlalchemy as sa
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from core.app import create_app
    from core.clinic.models import Patient
    from core.db import db
    from core.delivery import outbox
    from tenants.models import Tenant
    from tenants.scoping import tenant_scope

    app = create_app()
    tenant_id = uuid.UUID(sys.argv[1])

    @event.listens_for(Session, "after_commit")
    def committed(session):
        print("committed", flush=True)
        time.sleep(0.3)  # a window to be killed in, between two parts

    with app.app_context(), tenant_scope(tenant_id):
        tenant = db.session.get(Tenant, tenant_id)
        people = db.session.scalars(sa.select(Patient).order_by(Patient.id)).all()
        drafts = [
            {"patient": p, "purpose": "reminder", "template": "RDV", "reference": f"r-{n}"}
            for n, p in enumerate(people * 3)
        ]
        outbox.send_in_parts(tenant, drafts, part=3)
    print("done", flush=True)
    """
)


def run_producer(clinic) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(clinic.id)],
        env=process_env(PLUGINS),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def queued_ids() -> list[str]:
    """The message ids the jobs in Redis carry."""
    redis = Redis.from_url(REDIS_URL)
    found = []
    for name in QUEUES:
        for job in Queue(name, connection=redis).get_jobs():
            found += job.args[2]
    return found


def test_a_producer_killed_midway_loses_no_committed_part_and_writes_nothing_twice(app, clinic):
    for n in range(4):
        make_patient(app, clinic, phone=f"06100000{n:02d}")  # 12 drafts, parts of 3
    first = run_producer(clinic)
    assert first.stdout.readline().strip() == "committed"  # the first part is in
    first.send_signal(signal.SIGKILL)  # while it sleeps, or writes the second part
    first.communicate(timeout=10)

    with app.app_context(), system_scope():
        written = db.session.scalars(sa.select(Message.reference)).all()
        events = db.session.scalar(sa.select(sa.func.count()).select_from(MessageEvent))
    assert len(written) in (3, 6), "a part was half-written"
    assert events == len(written)  # each with its first step
    assert sorted(queued_ids()) == sorted(str(i) for i in _ids(app, written)), (
        "a committed part was not queued"
    )

    second = run_producer(clinic)
    output, _ = second.communicate(timeout=60)
    assert output.strip().endswith("done"), output
    with app.app_context(), system_scope():
        references = db.session.scalars(sa.select(Message.reference)).all()
    assert sorted(references) == sorted(f"r-{n}" for n in range(12))  # each once
    assert len(set(queued_ids())) == len(queued_ids()) == 12


def _ids(app, references):
    with app.app_context(), system_scope():
        return db.session.scalars(
            sa.select(Message.id).where(Message.reference.in_(references))
        ).all()


def test_send_in_parts_refuses_a_bad_draft_on_its_own(app, clinic):
    patient = make_patient(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        results = outbox.send_in_parts(
            clinic,
            [
                {"patient": who, "purpose": "reminder", "template": "RDV"},
                {"patient": who, "purpose": "nonsense", "template": "RDV"},
            ],
            part=1,
        )
    assert results[0].status == "pending"
    assert isinstance(results[1], ValidationError) and results[1].field == "purpose"


def test_what_a_batch_writes_reads_back_as_it_was_given(app, clinic):
    """Texts and references come back character for character, whatever they hold (the
    bulk insert sends each column as one array's text), and drafts sharing a template and
    variables each get their own content."""
    patient = make_patient(app, clinic)
    awkward = ['a"b', "c\\d", "{e,f}", "NULL", " spaced ", "é€ 🦷", "x\ny"]
    shared = {"name": 'Zoé "la" \\ {1,2}'}
    with time_machine.travel(OPEN_HOURS, tick=False), app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        drafts = [
            {
                "patient": who,
                "purpose": "reminder",
                "template": f"{text} {{{{ name }}}}",
                "variables": shared,
                "reference": text,
            }
            for text in awkward
        ] + [
            {
                "patient": who,
                "purpose": "reminder",
                "template": "RDV {{ name }}",
                "variables": shared,
                "reference": f"same-{n}",
            }
            for n in range(2)
        ]
        results = outbox.send_many(clinic, drafts)
        results[-1].content["text"] = "changed after"  # the other's content is its own
        db.session.commit()
        stored = {
            m.reference: m
            for m in db.session.scalars(
                sa.select(Message).execution_options(populate_existing=True)
            )
        }
    for text in awkward:
        message = stored[text]
        assert message.content["text"] == f'{text} Zoé "la" \\ {{1,2}}'
        assert (message.status, message.address, message.provider) == ("pending", None, None)
    assert results[-2].content["text"] == 'RDV Zoé "la" \\ {1,2}'  # rendered once, not shared
    assert stored["same-1"].content["text"] == 'RDV Zoé "la" \\ {1,2}'


def test_a_batch_of_alike_messages_keeps_each_content_sealed_on_its_own(app, clinic):
    """The bulk insert sends a value shared by every row once (the clinic, the time, the
    status), but never an encrypted one: two messages with the same text are stored as two
    different ciphertexts, which show nothing of their being the same."""
    patient = make_patient(app, clinic)
    with time_machine.travel(OPEN_HOURS, tick=False), app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        draft = {"patient": who, "purpose": "reminder", "template": "RDV demain"}
        results = outbox.send_many(clinic, [draft, draft, draft])
        db.session.commit()
        ids = [m.id for m in results]
        stored = db.session.execute(
            sa.text("SELECT id, content, status, created_at FROM messages WHERE id = ANY(:ids)"),
            {"ids": ids},
        ).all()
        read = db.session.scalars(
            sa.select(Message).where(Message.id.in_(ids)).execution_options(populate_existing=True)
        ).all()
    assert len(stored) == 3
    assert len({row.content for row in stored}) == 3  # three ciphertexts
    assert {row.status for row in stored} == {"pending"}
    assert len({row.created_at for row in stored}) == 1  # the batch's time, sent once
    assert [m.content["text"] for m in read] == ["RDV demain"] * 3
