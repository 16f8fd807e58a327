"""A message's lifecycle: one table of allowed status changes, each written to the
message's history and announced to plugins once committed, whoever causes it."""

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from core.app import create_app
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import dispatch, lifecycle, outbox, receipts, sweeper
from core.delivery.models import Attempt, Message, MessageEvent, MessageStatus
from core.delivery.providers import Inbound
from tenants.scoping import system_scope, tenant_scope
from tests.core.delivery import listener
from tests.worlds import TEST_CONFIG, make_clinic, make_patient

S = MessageStatus
ROOT = Path(__file__).resolve().parents[3]


def test_the_allowed_transitions():
    """The whole table, literally: a change to it shows in review."""
    assert {
        (None, S.PENDING),
        (None, S.SCHEDULED),
        (None, S.DENIED),
        (S.SCHEDULED, S.PENDING),
        (S.SCHEDULED, S.EXPIRED),
        (S.SCHEDULED, S.CANCELLED),
        (S.PENDING, S.SENDING),
        (S.PENDING, S.EXPIRED),
        (S.PENDING, S.CANCELLED),
        (S.SENDING, S.SENT),
        (S.SENDING, S.PENDING),
        (S.SENDING, S.FAILED),
        (S.SENDING, S.EXPIRED),
        (S.SENT, S.DELIVERED),
        (S.SENT, S.UNDELIVERED),
        (S.SENT, S.PENDING),
        (S.UNDELIVERED, S.DELIVERED),
    } == lifecycle.TRANSITIONS
    assert {(S.PENDING, S.SENDING)} == lifecycle.QUIET  # a claim: its outcome is recorded
    finals = {S.DELIVERED, S.FAILED, S.EXPIRED, S.DENIED, S.CANCELLED}
    assert not any(frm in finals for frm, _ in lifecycle.TRANSITIONS)


def status_writes(source: str) -> list[int]:
    """The lines of ``source`` that set a ``status`` (an assignment, ``Message(status=...)``,
    ``.values(status=...)``) or write a ``MessageEvent``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and part.attr == "status":
                        found.append(node.lineno)
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ("Message", "values") and any(k.arg == "status" for k in node.keywords):
                found.append(node.lineno)
            if name == "MessageEvent" or (
                name == "insert"
                and any(getattr(a, "id", None) == "MessageEvent" for a in node.args)
            ):
                found.append(node.lineno)
    return sorted(set(found))


def test_no_other_module_changes_a_status_or_writes_a_history():
    """A meta-test: statuses and MessageEvent rows are written in core/delivery/lifecycle.py
    only (models.py declares them; others may read them)."""
    found = []
    for folder in ("core", "tenants", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative == "core/delivery/lifecycle.py":
                continue
            source = path.read_text()
            if "core.delivery.models" not in source:  # an appointment's status is its own
                continue
            found += [f"{relative}:{n}" for n in status_writes(source)]
    assert found == []


def test_the_meta_test_finds_the_writes_it_looks_for():
    source = """
message.status, message.finished_at = MessageStatus.DENIED, now
message.status = status
db.session.add(Message(id=i, status=MessageStatus.PENDING))
sa.update(Message).values(status=MessageStatus.SENDING)
db.session.add(MessageEvent(message_id=i, status="sent"))
db.session.execute(sa.insert(MessageEvent), rows)
sa.select(MessageEvent).where(MessageEvent.status == "sent")
if message.status == MessageStatus.SENT and appointment.status:
    print(message.status, status=1)
"""
    assert status_writes(source) == [2, 3, 4, 5, 6, 7]


@pytest.fixture
def listening_app(app):
    application = create_app(
        {
            **TEST_CONFIG,
            "PLUGINS": ("plugins.channels.outbox.plugin", "tests.core.delivery.listener"),
        }
    )
    listener.changes.clear()
    listener.batches.clear()
    listener.replies.clear()
    listener.sweeps.clear()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def clinic(listening_app):
    return make_clinic(listening_app, "demo", "FR", plugins=("outbox", "listener"))


def send(app, tenant, channels=("sms",), **kwargs):
    patient = make_patient(app, tenant)
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        message = outbox.send(tenant, who, "transactional", "Bonjour", {}, list(channels), **kwargs)
        db.session.commit()
        return message.id


def history(app, tenant, message_id):
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(
            sa.select(MessageEvent.status, MessageEvent.detail)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.at, MessageEvent.id)
        ).all()


def heard(message_id):
    return [(status, stored) for _, m, status, stored in listener.changes if m == message_id]


def test_a_message_is_sent_at_its_calls_time_not_its_jobs_start(listening_app, clinic):
    message_id = send(listening_app, clinic)
    with listening_app.app_context(), tenant_scope(clinic.id):
        started = utcnow()
        assert dispatch.deliver([str(message_id)]) == 1
        message = db.session.get(Message, (clinic.id, message_id))
        [call] = db.session.scalars(sa.select(Attempt.at)).all()
    assert started <= call <= message.sent_at <= utcnow()
    assert message.calling is None  # the call's outcome is known


def test_a_worker_finds_its_messages_by_their_whole_primary_key(listening_app, clinic):
    # The key is (tenant_id, id): a statement by id alone reads the whole index, a cost that
    # grows with the table (a campaign's claims slowed from 3,700 to 600 messages/s).
    ids = [str(send(listening_app, clinic)) for _ in range(3)]
    seen = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    with listening_app.app_context(), tenant_scope(clinic.id):
        sa.event.listen(db.engine, "before_cursor_execute", keep)
        try:
            assert dispatch.deliver(ids) == 3
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", keep)
    by_id = [s for s in seen if re.search(r"(FROM|UPDATE) messages\b", s) and "messages.id" in s]
    assert by_id, seen
    for statement in by_id:
        assert "messages.tenant_id" in statement.partition(" WHERE ")[2], statement


def test_a_disallowed_transition_is_refused_and_changes_nothing(listening_app, clinic):
    message_id = send(listening_app, clinic)
    with listening_app.app_context(), tenant_scope(clinic.id):
        assert dispatch.deliver([str(message_id)]) == 1  # sent
    listener.changes.clear()
    before = history(listening_app, clinic, message_id)

    with listening_app.app_context(), tenant_scope(clinic.id):
        message = db.session.get(Message, (clinic.id, message_id))
        with pytest.raises(lifecycle.TransitionError, match="from sent to expired"):
            lifecycle.finish(message, S.EXPIRED, "too late", utcnow())
        assert not lifecycle.cancel(message, "too late")  # refused, said so
        with pytest.raises(lifecycle.TransitionError):  # the bulk form checks first
            lifecycle.move_many([Message.id == message_id], [S.SENT], S.SCHEDULED, "no", 10)
        assert message.status == S.SENT
        db.session.commit()

    assert history(listening_app, clinic, message_id) == before
    with listening_app.app_context(), tenant_scope(clinic.id):
        assert db.session.get(Message, (clinic.id, message_id)).status == S.SENT
    assert listener.changes == []


def test_every_change_is_announced_once_after_commit(listening_app, clinic):
    message_id = send(listening_app, clinic)
    assert heard(message_id) == [("pending", "pending")]
    with listening_app.app_context(), tenant_scope(clinic.id):
        dispatch.deliver([str(message_id)])
    assert heard(message_id) == [("pending", "pending"), ("sent", "sent")]  # a claim is quiet


def test_a_commit_of_many_changes_is_announced_in_one_bulk_call(listening_app, clinic):
    ids = [send(listening_app, clinic) for _ in range(3)]
    assert listener.batches == [[(i, "pending")] for i in ids]  # one commit each
    listener.batches.clear()
    with listening_app.app_context(), system_scope():
        moved = lifecycle.move_many([Message.id.in_(ids)], [S.PENDING], S.CANCELLED, "no", 10)
        db.session.commit()
    assert moved == 3
    (batch,) = listener.batches  # one call for the commit, each change in it
    assert sorted(batch) == sorted((i, "cancelled") for i in ids)
    assert [(m, s) for _, m, s, _ in listener.changes[-3:]] == batch  # the same, in order


def test_a_stored_reply_is_announced_once_to_observers(listening_app, clinic):
    patient = make_patient(listening_app, clinic)
    reply = Inbound(
        sender=patient.phone, recipient="+33939030101", text="Merci", at=utcnow(), provider_ref="r1"
    )
    with listening_app.app_context(), tenant_scope(clinic.id):
        row = receipts.keep_inbound(clinic, patient.id, "outbox", "sms", reply)
        again = receipts.keep_inbound(clinic, patient.id, "outbox", "sms", reply)
        reply_id = row.id
        db.session.commit()
    assert again is None
    assert listener.replies == [(reply_id, "sms", None)]


def test_the_sweeper_calls_the_plugins_on_each_pass(listening_app, clinic):
    with listening_app.app_context():
        sweeper.sweep()
        sweeper.sweep()
    assert len(listener.sweeps) == 2 and listener.sweeps[0] <= listener.sweeps[1]


def test_a_change_rolled_back_is_never_announced(listening_app, clinic):
    patient = make_patient(listening_app, clinic)
    with listening_app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        outbox.send(clinic, who, "transactional", "Bonjour", {}, ["sms"])
        db.session.rollback()
        with db.session.begin_nested():  # a savepoint that keeps its message
            kept = outbox.send(clinic, who, "transactional", "Gardé", {}, ["sms"]).id
        savepoint = db.session.begin_nested()
        outbox.send(clinic, who, "transactional", "Annulé", {}, ["sms"])
        savepoint.rollback()
        db.session.commit()
    assert [m for _, m, _, _ in listener.changes] == [kept]


def test_the_sweeper_announces_expiry(listening_app, clinic):
    now = utcnow()
    message_id = send(
        listening_app,
        clinic,
        not_before=now + timedelta(hours=2),
        expires_at=now + timedelta(hours=1),
    )
    with time_machine.travel(now + timedelta(hours=1, minutes=1)), listening_app.app_context():
        assert sweeper.sweep()["expired"] == 1
    assert heard(message_id) == [("scheduled", "scheduled"), ("expired", "expired")]
    assert history(listening_app, clinic, message_id)[-1] == (
        "expired",
        "expired before it could be sent",
    )


def test_the_sweeper_announces_a_message_no_device_acknowledged(listening_app, clinic):
    message_id = send(listening_app, clinic, channels=("push",))
    with listening_app.app_context(), tenant_scope(clinic.id):
        dispatch.deliver([str(message_id)])
    assert heard(message_id)[-1] == ("sent", "sent")

    later = utcnow() + timedelta(minutes=6)  # past the 5 minutes' default
    with time_machine.travel(later), listening_app.app_context():
        assert sweeper.sweep()["unacknowledged"] == 1
    assert heard(message_id)[-1] == ("undelivered", "undelivered")
    assert [s for s, _ in heard(message_id)] == ["pending", "sent", "undelivered"]
    with listening_app.app_context(), system_scope():
        assert db.session.get(Message, (clinic.id, message_id)).status == S.UNDELIVERED
