"""The worker's writes in bulk: a batch of claimed messages is sent in a few statements,
each message still checked, written to its history and announced once committed."""

import pytest
import sqlalchemy as sa

from core.app import create_app
from core.clinic import settings
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import dispatch, lifecycle, outbox
from core.delivery.models import Attempt, Message, MessageEvent, MessageStatus
from tenants.scoping import system_scope, tenant_scope
from tests.core.delivery import listener
from tests.worlds import TEST_CONFIG, make_clinic, make_patient

S = MessageStatus


@pytest.fixture
def listening_app(app):
    application = create_app(
        {
            **TEST_CONFIG,
            "PLUGINS": ("plugins.channels.outbox.plugin", "tests.core.delivery.listener"),
        }
    )
    listener.changes.clear()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def clinic(listening_app):
    return make_clinic(listening_app, "bulk", "FR", plugins=("outbox", "listener"))


def send_many(app, tenant, count: int) -> list:
    patient = make_patient(app, tenant)
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        ids = [
            outbox.send(tenant, who, "transactional", f"Bonjour {n}", {}, ["sms"]).id
            for n in range(count)
        ]
        db.session.commit()
    return ids


def test_sent_many_sends_each_with_its_history_and_announces_after_commit(listening_app, clinic):
    ids = send_many(listening_app, clinic, 3)
    listener.changes.clear()
    now = utcnow()
    with listening_app.app_context(), tenant_scope(clinic.id):
        claimed = dispatch.claim(ids)
        lifecycle.sent_many([(m, f"ref-{m.id}") for m in claimed], "outbox", now)
        assert all(m.status == S.SENT for m in claimed)  # the objects say what was written
        assert listener.changes == []  # not before the commit
        db.session.commit()
    assert sorted((m, s) for _, m, s, _ in listener.changes) == sorted((i, "sent") for i in ids)
    with listening_app.app_context(), tenant_scope(clinic.id):
        for message_id in ids:
            message = db.session.get(Message, (clinic.id, message_id))
            assert (message.status, message.provider, message.provider_ref) == (
                S.SENT,
                "outbox",
                f"ref-{message_id}",
            )
            assert message.sent_at == now and message.claim_id is None
            events = db.session.execute(
                sa.select(MessageEvent.status, MessageEvent.detail)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.at)
            ).all()
            assert events == [("pending", None), ("sent", "outbox")]


def test_sent_many_refuses_a_message_not_being_sent_and_changes_nothing(listening_app, clinic):
    first, second = send_many(listening_app, clinic, 2)
    listener.changes.clear()
    with listening_app.app_context(), tenant_scope(clinic.id):
        claimed = dispatch.claim([first])
        waiting = db.session.get(Message, (clinic.id, second))  # pending: never claimed
        with pytest.raises(lifecycle.TransitionError, match="from pending to sent"):
            lifecycle.sent_many([(claimed[0], "a"), (waiting, "b")], "outbox", utcnow())
        db.session.commit()
    with listening_app.app_context(), tenant_scope(clinic.id):
        statuses = {
            m.id: m.status
            for m in db.session.scalars(sa.select(Message).where(Message.id.in_([first, second])))
        }
        assert statuses == {first: S.SENDING, second: S.PENDING}
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(MessageEvent)
                .where(MessageEvent.status == "sent")
            )
            == 0
        )
    assert listener.changes == []


def test_a_batch_is_sent_with_one_attempt_each_of_known_outcome(listening_app, clinic):
    ids = send_many(listening_app, clinic, 5)
    with listening_app.app_context(), tenant_scope(clinic.id):
        assert dispatch.deliver([str(i) for i in ids]) == 5
    with listening_app.app_context(), tenant_scope(clinic.id):
        attempts = db.session.execute(
            sa.select(Attempt.message_id, Attempt.outcome, Attempt.provider)
        ).all()
        assert sorted(attempts) == sorted((i, "accepted", "outbox_sms") for i in ids)
        assert set(db.session.scalars(sa.select(Message.status).where(Message.id.in_(ids)))) == {
            S.SENT
        }


def test_a_provider_that_delivers_what_it_takes_delivers_in_the_same_writes(listening_app, clinic):
    with listening_app.app_context(), system_scope():
        settings.save("FR", "outbox", {"report_delivery": "yes"})
        db.session.commit()
    ids = send_many(listening_app, clinic, 3)
    listener.changes.clear()
    with listening_app.app_context(), tenant_scope(clinic.id):
        assert dispatch.deliver([str(i) for i in ids]) == 3
    assert [(m, s) for _, m, s, _ in listener.changes] == [
        *((i, "sent") for i in ids),
        *((i, "delivered") for i in ids),
    ]
    with listening_app.app_context(), tenant_scope(clinic.id):
        for message_id in ids:
            message = db.session.get(Message, (clinic.id, message_id))
            assert message.status == S.DELIVERED and message.provider == "outbox_sms"
            assert message.sent_at == message.delivered_at == message.finished_at
            assert message.claim_id is None and message.lease_until is None
            events = db.session.scalars(
                sa.select(MessageEvent.status)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.at, MessageEvent.id)
            ).all()
            assert events == ["pending", "sent", "delivered"]
