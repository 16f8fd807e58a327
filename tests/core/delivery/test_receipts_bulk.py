"""A webhook call carrying many delivery reports (Infobip posts up to 100 at once) is
recorded in bulk, each report with the effect it has alone, in the call's order."""

import json
import threading

import pytest
import sqlalchemy as sa

from core.db import db
from core.delivery import dispatch, receipts, sweeper
from core.delivery.models import Message, MessageStatus
from tenants.scoping import tenant_scope
from tests.core.delivery.prompt_receipts import reference
from tests.core.delivery.test_receipt_races import (
    RECEIPTS,
    history,
    kept_receipts,
    race_app,  # noqa: F401 - the fixture
    send,
    statuses,
)
from tests.worlds import client_for, make_clinic, wait_until

S = MessageStatus


@pytest.fixture
def clinic(race_app):  # noqa: F811
    return make_clinic(race_app, "bulk", "FR", plugins=("fr", "prompt_receipts"))


def sent(app, clinic, count):
    ids = send(app, clinic, count)
    with app.app_context(), tenant_scope(clinic.id):
        assert dispatch.deliver([str(i) for i in ids]) == count
    assert statuses(app, clinic, ids) == [S.SENT] * count
    return ids


def post(app, clinic, reports) -> int:
    body = [{"ref": ref, "status": status} for ref, status in reports]
    client = client_for(app, clinic.slug)
    return client.post(RECEIPTS, data=json.dumps(body), content_type="application/json").status_code


def test_mixed_reports_in_one_call_each_have_their_effect(race_app, clinic):  # noqa: F811
    ids = sent(race_app, clinic, 5)
    first, failed, late, twice, intermediate = ids
    reports = [
        (reference(first), "delivered"),
        (reference(failed), "undelivered"),
        (reference(late), "undelivered"),
        (reference(twice), "delivered"),
        ("prompt-not-sent-yet", "delivered"),
        (reference(late), "delivered"),  # a late report of delivery after a failure
        (reference(twice), "delivered"),  # the provider repeating itself
        (reference(intermediate), "sent"),  # queued at the carrier: nothing to record
    ]
    assert post(race_app, clinic, reports) == 204
    assert statuses(race_app, clinic, ids) == [
        S.DELIVERED,
        S.UNDELIVERED,
        S.DELIVERED,
        S.DELIVERED,
        S.SENT,
    ]
    assert history(race_app, clinic, first)[-2:] == ["sent", "delivered"]
    assert history(race_app, clinic, late)[-3:] == ["sent", "undelivered", "delivered"]
    assert history(race_app, clinic, twice).count("delivered") == 1
    assert history(race_app, clinic, intermediate)[-1] == "sent"
    assert kept_receipts(race_app, clinic) == ["prompt-not-sent-yet"]
    with race_app.app_context(), tenant_scope(clinic.id):
        message = db.session.get(Message, (clinic.id, first))
        assert message.delivered_at is not None and message.finished_at == message.delivered_at


def test_a_call_of_many_reports_takes_as_many_statements_as_one_of_few(race_app, clinic):  # noqa: F811
    def statements(count) -> int:
        ids = sent(race_app, clinic, count)
        seen = []

        def count_it(conn, cursor, statement, parameters, context, executemany):
            seen.append(len(parameters) if executemany else 1)

        with race_app.app_context():
            engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", count_it)
        try:
            assert post(race_app, clinic, [(reference(i), "delivered") for i in ids]) == 204
        finally:
            sa.event.remove(engine, "before_cursor_execute", count_it)
        assert statuses(race_app, clinic, ids) == [S.DELIVERED] * count
        return sum(seen)

    statements(1)  # the first call also reads the clinic, which the process then remembers
    assert statements(40) == statements(2)


def test_a_report_posted_to_another_clinic_changes_nothing_of_this_ones(race_app, clinic):  # noqa: F811
    [mine] = sent(race_app, clinic, 1)
    other = make_clinic(race_app, "bulk-other", "FR", plugins=("fr", "prompt_receipts"))

    assert post(race_app, other, [(reference(mine), "delivered")]) == 204
    with race_app.app_context():
        sweeper.sweep()  # nor later, by the sweeper: the report is the other clinic's

    assert statuses(race_app, clinic, [mine]) == [S.SENT]
    assert history(race_app, clinic, mine)[-1] == "sent"
    assert kept_receipts(race_app, other) == [reference(mine)]


def test_calls_arriving_while_one_commits_are_applied_together(race_app, clinic, monkeypatch):  # noqa: F811
    """A process applies the reports of its concurrent webhook calls in one transaction; each
    call is answered once its reports are committed."""
    ids = sent(race_app, clinic, 6)
    applied, busy, release = [], threading.Event(), threading.Event()
    apply_receipts = receipts.apply_receipts

    def held(provider, reports):
        applied.append(sorted(r.provider_ref for r in reports))
        if len(applied) == 1:  # the first transaction waits: the other calls queue meanwhile
            busy.set()
            assert release.wait(10)
        apply_receipts(provider, reports)

    monkeypatch.setattr(receipts, "apply_receipts", held)
    answers = {}

    def call(message_id):
        answers[message_id] = post(race_app, clinic, [(reference(message_id), "delivered")])

    first = threading.Thread(target=call, args=(ids[0],))
    first.start()
    assert busy.wait(10)
    others = [threading.Thread(target=call, args=(i,)) for i in ids[1:]]
    for thread in others:
        thread.start()
    wait_until(lambda: receipts_waiting(race_app) == 5)
    assert answers == {}  # nothing is answered before its commit
    release.set()
    for thread in [first, *others]:
        thread.join(10)

    assert answers == dict.fromkeys(ids, 204)
    assert applied == [[reference(ids[0])], sorted(reference(i) for i in ids[1:])]
    assert statuses(race_app, clinic, ids) == [S.DELIVERED] * 6


def test_a_call_whose_reports_fail_fails_alone(race_app, clinic, monkeypatch):  # noqa: F811
    ids = sent(race_app, clinic, 3)
    bad = reference(ids[1])
    apply_receipts = receipts.apply_receipts
    busy, release = threading.Event(), threading.Event()

    def failing(provider, reports):
        if not busy.is_set():  # the first transaction waits: the three calls queue meanwhile
            busy.set()
            assert release.wait(10)
        if any(r.provider_ref == bad for r in reports):
            raise RuntimeError("this call's reports cannot be applied")
        apply_receipts(provider, reports)

    monkeypatch.setattr(receipts, "apply_receipts", failing)
    blocker = sent(race_app, clinic, 1)[0]
    answers = {}

    def call(message_id):
        try:
            answers[message_id] = post(race_app, clinic, [(reference(message_id), "delivered")])
        except RuntimeError:  # the test app propagates the view's exceptions (a 500)
            answers[message_id] = 500

    threads = [threading.Thread(target=call, args=(i,)) for i in (blocker, *ids)]
    threads[0].start()
    assert busy.wait(10)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: receipts_waiting(race_app) == 3)
    release.set()
    for thread in threads:
        thread.join(10)

    assert answers == {blocker: 204, ids[0]: 204, ids[1]: 500, ids[2]: 204}
    assert statuses(race_app, clinic, ids) == [S.DELIVERED, S.SENT, S.DELIVERED]


def receipts_waiting(app) -> int:
    """Calls queued for this app's next transaction of reports."""
    return receipts._applied_together.waiting(app)
