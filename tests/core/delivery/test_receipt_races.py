"""A delivery report racing the worker that records its send is applied, whatever the order.

The provider here (tests/core/delivery/prompt_receipts.py) reports at once; its webhook is
posted through the app's real route, from another thread, at the worst moment: after the
worker looked for reports kept for its messages, before it commits their sends.
"""

import json
import threading
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from core.app import create_app
from core.clinic import apikeys
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import dispatch, lifecycle, outbox, sweeper
from core.delivery.models import EarlyReceipt, Message, MessageEvent, MessageStatus
from core.extensions import limiter
from tenants.scoping import system_scope, tenant_scope
from tests.core.delivery.prompt_receipts import reference
from tests.worlds import TEST_CONFIG, HostClient, client_for, make_clinic, make_patient, wait_until

PLUGINS = ("plugins.regulations.fr.plugin", "tests.core.delivery.prompt_receipts")
RECEIPTS = "/webhooks/prompt_sms/receipts"


@pytest.fixture(scope="module")
def race_app(app):
    application = create_app({**TEST_CONFIG, "PLUGINS": PLUGINS})
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def clinic(race_app):
    return make_clinic(race_app, "demo", "FR", plugins=("fr", "prompt_receipts"))


def send(app, clinic, count: int) -> list[uuid.UUID]:
    patient = make_patient(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        ids = [
            outbox.send(clinic, who, "transactional", f"Message {n}", {}, ["sms"]).id
            for n in range(count)
        ]
        db.session.commit()
    return ids


def post_receipts(app, clinic, message_ids) -> int:
    """The provider's webhook call reporting these messages delivered, in one request."""
    body = [{"ref": reference(i), "status": "delivered"} for i in message_ids]
    client = client_for(app, clinic.slug)
    return client.post(RECEIPTS, data=json.dumps(body), content_type="application/json").status_code


def statuses(app, clinic, message_ids) -> list[MessageStatus]:
    with app.app_context(), tenant_scope(clinic.id):
        found = dict(db.session.execute(sa.select(Message.id, Message.status)).all())
    return [found[i] for i in message_ids]


def kept_receipts(app, clinic) -> list[str]:
    with app.app_context(), tenant_scope(clinic.id):
        return sorted(db.session.scalars(sa.select(EarlyReceipt.provider_ref)))


def history(app, clinic, message_id) -> list[str]:
    with app.app_context(), tenant_scope(clinic.id):
        return list(
            db.session.scalars(
                sa.select(MessageEvent.status)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.at, MessageEvent.id)
            )
        )


def lock_waiters(app) -> int:
    """Sessions of the test database waiting for a lock another one holds."""
    with app.app_context(), db.engine.connect() as conn:
        return conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )


def test_a_receipt_between_the_workers_check_and_its_commit_is_applied(race_app, clinic):
    message_ids = send(race_app, clinic, 3)
    worker = threading.get_ident()
    webhook: dict = {}

    def callback():
        # The carrier's reports, newest first: a webhook's locks are not taken in its order.
        webhook["status"] = post_receipts(race_app, clinic, list(reversed(message_ids)))

    caller = threading.Thread(target=callback)

    def in_the_window(conn, cursor, statement, parameters, context, executemany):
        """Once the worker has looked for reports kept for its messages (not committed
        yet): the provider calls back, and the worker goes on only when that call is over
        or waits for it."""
        if threading.get_ident() != worker or "FROM early_receipts" not in statement:
            return
        if caller.is_alive() or "status" in webhook:
            return  # the window is opened once
        caller.start()
        wait_until(lambda: not caller.is_alive() or lock_waiters(race_app), timeout=10)

    with race_app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", in_the_window)
    try:
        with race_app.app_context(), tenant_scope(clinic.id):
            assert dispatch.deliver([str(i) for i in message_ids]) == 3
    finally:
        event.remove(engine, "after_cursor_execute", in_the_window)
    caller.join(timeout=10)
    assert not caller.is_alive()

    assert webhook["status"] == 204
    assert statuses(race_app, clinic, message_ids) == [MessageStatus.DELIVERED] * 3
    assert kept_receipts(race_app, clinic) == []
    for message_id in message_ids:
        assert history(race_app, clinic, message_id) == ["pending", "sent", "delivered"]


def test_the_sweeper_applies_a_receipt_its_worker_left(race_app, clinic):
    first, second = send(race_app, clinic, 2)
    with race_app.app_context(), tenant_scope(clinic.id):
        dispatch.claim([first, second])  # the worker calls the provider...
    # ...which reports both delivered before the worker recorded either send: kept.
    assert post_receipts(race_app, clinic, [first, second]) == 204
    assert kept_receipts(race_app, clinic) == sorted([reference(first), reference(second)])
    # The worker records the first send and dies before applying what was kept for it.
    with race_app.app_context(), tenant_scope(clinic.id):
        message = db.session.get(Message, (clinic.id, first))
        lifecycle.sent(message, "prompt_sms", reference(first), utcnow())
        db.session.commit()

    with race_app.app_context():
        assert sweeper.sweep()["receipts"] == 1

    assert statuses(race_app, clinic, [first, second]) == [
        MessageStatus.DELIVERED,
        MessageStatus.SENDING,  # not sent yet: its report waits for its send
    ]
    assert history(race_app, clinic, first) == ["pending", "sent", "delivered"]
    assert kept_receipts(race_app, clinic) == [reference(second)]

    # Its lease ends, a worker sends it again: the report kept for it is applied then.
    with race_app.app_context():
        with system_scope():
            db.session.execute(sa.update(Message).values(lease_until=utcnow()))
            db.session.commit()
        assert sweeper.sweep()["reclaimed"] == 1
    with race_app.app_context(), tenant_scope(clinic.id):
        assert dispatch.deliver([str(second)]) == 1
    assert statuses(race_app, clinic, [second]) == [MessageStatus.DELIVERED]
    assert kept_receipts(race_app, clinic) == []
    with race_app.app_context():
        assert sweeper.sweep()["receipts"] == 0


def test_a_default_rate_limit_never_holds_back_a_providers_reports_but_holds_elsewhere(
    race_app,
):
    """A provider posts all its reports from a few addresses: an operator's default limit
    per address (here two a minute) must not refuse the third, or reports go missing."""
    limited = create_app({**TEST_CONFIG, "PLUGINS": PLUGINS, "RATELIMIT_DEFAULT": "2 per minute"})
    limited.test_client_class = HostClient
    try:
        clinic = make_clinic(limited, "limits", "FR", plugins=("fr", "prompt_receipts"))
        ids = send(limited, clinic, 4)
        with limited.app_context(), tenant_scope(clinic.id):
            assert dispatch.deliver([str(i) for i in ids]) == 4
        answers = [post_receipts(limited, clinic, [i]) for i in ids]
        assert answers == [204] * 4
        assert statuses(limited, clinic, ids) == [MessageStatus.DELIVERED] * 4
        # the default limit holds elsewhere: the clinic's sign-in page is refused a third time
        client = client_for(limited, clinic.slug)
        assert [client.get("/login").status_code for _ in range(3)][-1] == 429
        # and on the API, whose routes have no limit of their own
        with limited.app_context(), tenant_scope(clinic.id):
            _, token = apikeys.create_key("practice software")
            db.session.commit()
        bearer = {"Authorization": f"Bearer {token}"}
        api = [client.get("/api/v1/patients", headers=bearer).status_code for _ in range(3)]
        assert api == [200, 200, 429]
    finally:
        # One limiter serves every app of the process, and keeps the first default limits
        # an app gives it: the later tests' apps set none.
        limiter.limit_manager.set_default_limits([])
        with limited.app_context():
            db.session.remove()
            db.engine.dispose()
