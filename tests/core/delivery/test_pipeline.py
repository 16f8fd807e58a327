"""A message's way: outbox, queue, claim, provider, retries, failover, fallback, sweeper."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from redis import Redis
from rq import Queue

from core.app import create_app
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import dispatch, outbox, receipts, sweeper
from core.delivery.models import Attempt, Message, MessageEvent, MessageStatus
from core.delivery.providers import Receipt
from tenants import provisioning
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.core.delivery import flaky
from tests.worlds import (
    OPEN_HOURS,
    REDIS_URL,
    TEST_CONFIG,
    consent_to_campaigns,
    make_clinic,
    make_patient,
)

PLUGINS = ("outbox", "fr")


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=PLUGINS)


def send(app, tenant, patient, channels=("sms",), commit=True, **kwargs):
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        message = outbox.send(
            tenant,
            who,
            kwargs.pop("purpose", "transactional"),
            kwargs.pop("template", "Bonjour {{ name }}"),
            {"name": who.first_name},
            list(channels),
            **kwargs,
        )
        if commit:
            db.session.commit()
        return message.id


def state(app, tenant, message_id):
    with app.app_context(), tenant_scope(tenant.id):
        message = db.session.get(Message, (tenant.id, message_id))
        db.session.expunge(message)
        return message


def deliveries(app, tenant):
    from plugins.channels.outbox.plugin import OutboxDelivery

    with app.app_context(), tenant_scope(tenant.id):
        return [
            (d.channel, d.recipient, d.text)
            for d in db.session.scalars(sa.select(OutboxDelivery).order_by(OutboxDelivery.at))
        ]


def run_job(app, tenant, *message_ids):
    with app.app_context(), tenant_scope(tenant.id):
        return dispatch.deliver([str(i) for i in message_ids])


def worker_env():
    return {
        **os.environ,
        "RELAIS_DATABASE_URL": TEST_CONFIG["DATABASE_URL"],
        "RELAIS_REDIS_URL": REDIS_URL,
        "RELAIS_SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
        "RELAIS_ENCRYPTION_KEYS": TEST_CONFIG["ENCRYPTION_KEYS"],
        "RELAIS_SERVER_NAME": TEST_CONFIG["SERVER_NAME"],
    }


def relais(*args) -> subprocess.CompletedProcess:
    executable = str(Path(sys.executable).parent / "relais")
    return subprocess.run(
        [executable, *args], env=worker_env(), capture_output=True, text=True, timeout=120
    )


def test_a_message_goes_through_redis_and_a_real_worker(app, clinic):
    patient = make_patient(app, clinic, first_name="Jeanne", phone="0612345678")
    message_id = send(app, clinic, patient)
    assert Queue("transactional", connection=Redis.from_url(REDIS_URL)).count == 1

    result = relais("worker", "--burst")
    assert result.returncode == 0, result.stderr

    assert deliveries(app, clinic) == [("sms", "+33612345678", "Bonjour Jeanne")], result.stderr
    message = state(app, clinic, message_id)
    assert message.status == MessageStatus.SENT and message.provider == "outbox_sms"
    with app.app_context(), tenant_scope(clinic.id):
        events = db.session.scalars(
            sa.select(MessageEvent.status)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.at)
        ).all()
        attempts = db.session.scalars(sa.select(Attempt.outcome)).all()
    assert events == ["pending", "sent"]
    assert attempts == ["accepted"]


def test_nothing_is_queued_before_commit(app, clinic):
    patient = make_patient(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        outbox.send(clinic, who, "transactional", "x", {}, ["sms"])
        db.session.rollback()  # the change that caused it did not happen
    assert Queue("transactional", connection=Redis.from_url(REDIS_URL)).count == 0


def test_purposes_go_to_their_priority_queue(app, clinic):
    patient = make_patient(app, clinic)
    consent_to_campaigns(app, clinic, patient)
    with time_machine.travel(OPEN_HOURS):
        for purpose in ("otp", "reminder", "campaign", "messaging"):
            send(app, clinic, patient, purpose=purpose)
    redis = Redis.from_url(REDIS_URL)
    counts = {
        q: Queue(q, connection=redis).count for q in ("otp", "transactional", "reminders", "bulk")
    }
    assert counts == {"otp": 1, "transactional": 1, "reminders": 1, "bulk": 1}


def test_scheduled_messages_stay_in_the_database_until_due(app, clinic):
    patient = make_patient(app, clinic)
    message_id = send(app, clinic, patient, not_before=utcnow() + timedelta(hours=2))
    assert state(app, clinic, message_id).status == MessageStatus.SCHEDULED
    assert Queue("transactional", connection=Redis.from_url(REDIS_URL)).count == 0

    with app.app_context():
        assert sweeper.sweep()["due"] == 0
        with tenant_scope(clinic.id):  # two hours later
            db.session.get(Message, (clinic.id, message_id)).next_attempt_at = utcnow()
            db.session.commit()
        counts = sweeper.sweep()
    assert counts["due"] == 1 and counts["pushed"] == 1
    assert Queue("transactional", connection=Redis.from_url(REDIS_URL)).count == 1


def test_a_landline_falls_back_to_voice(app, clinic):
    patient = make_patient(app, clinic, phone="0142685300")
    message_id = send(app, clinic, patient, channels=("sms", "voice"))
    run_job(app, clinic, message_id)
    assert deliveries(app, clinic) == [("voice", "+33142685300", "Bonjour Jeanne")]
    assert state(app, clinic, message_id).channel == "voice"


def test_a_patient_without_email_gets_the_next_channel(app, clinic):
    patient = make_patient(app, clinic, email=None)
    message_id = send(app, clinic, patient, channels=("email", "sms"))
    run_job(app, clinic, message_id)
    assert [d[0] for d in deliveries(app, clinic)] == ["sms"]


def test_a_patient_who_prefers_voice_is_called_instead_of_texted(app, clinic):
    patient = make_patient(app, clinic, preferred_channel="voice")
    message_id = send(app, clinic, patient, channels=("sms", "email"))
    run_job(app, clinic, message_id)
    assert deliveries(app, clinic) == [("voice", "+33612345678", "Bonjour Jeanne")]
    assert state(app, clinic, message_id).channels == ["voice", "sms", "email"]


def test_a_preferred_channel_goes_first_when_the_plan_has_it(app, clinic):
    patient = make_patient(app, clinic, email="jeanne@example.org", preferred_channel="email")
    message_id = send(app, clinic, patient, channels=("sms", "email"))
    run_job(app, clinic, message_id)
    assert [d[0] for d in deliveries(app, clinic)] == ["email"]
    # A preference the plan does not have is not imposed (a code goes by SMS only).
    other = make_patient(app, clinic, phone="0612345679", preferred_channel="email")
    assert state(app, clinic, send(app, clinic, other, channels=("sms",))).channels == ["sms"]


def test_an_undelivered_receipt_sends_by_the_next_channel(app, clinic):
    patient = make_patient(app, clinic, email="jeanne@example.org")
    message_id = send(app, clinic, patient, channels=("sms", "email"))
    run_job(app, clinic, message_id)
    report = Receipt(
        "undelivered", utcnow(), provider_ref=f"outbox-{message_id}", error="unreachable handset"
    )
    with app.app_context(), tenant_scope(clinic.id):
        receipts.apply_receipt("outbox_sms", report)
        db.session.commit()
    assert state(app, clinic, message_id).status == MessageStatus.PENDING
    run_job(app, clinic, message_id)
    assert [d[0] for d in deliveries(app, clinic)] == ["sms", "email"]
    with app.app_context(), tenant_scope(clinic.id):
        steps = db.session.scalars(
            sa.select(MessageEvent.status)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.at, MessageEvent.id)
        ).all()
        # The last channel undelivered too: nothing left, the message stays undelivered.
        last = Receipt(status="undelivered", at=utcnow(), provider_ref=f"outbox-{message_id}")
        receipts.apply_receipt("outbox_email", last)
        db.session.commit()
    assert steps.index("fallback") == steps.index("undelivered") + 1
    assert steps.count("sent") == 2
    assert state(app, clinic, message_id).status == MessageStatus.UNDELIVERED


def test_no_channel_left_is_a_failure(app, clinic):
    patient = make_patient(app, clinic, phone="0142685300", email=None)
    message_id = send(app, clinic, patient, channels=("sms", "email"))
    run_job(app, clinic, message_id)
    assert state(app, clinic, message_id).status == MessageStatus.FAILED
    assert deliveries(app, clinic) == []


def test_expired_messages_are_not_sent(app, clinic):
    patient = make_patient(app, clinic)
    message_id = send(app, clinic, patient, expires_at=utcnow() + timedelta(seconds=30))
    with app.app_context(), tenant_scope(clinic.id):
        db.session.get(Message, (clinic.id, message_id)).expires_at = utcnow()
        db.session.commit()
    with app.app_context():
        assert sweeper.sweep()["expired"] == 1
    run_job(app, clinic, message_id)
    assert state(app, clinic, message_id).status == MessageStatus.EXPIRED
    assert deliveries(app, clinic) == []


def test_a_dead_workers_messages_are_sent_once_after_its_lease(app, clinic):
    patient = make_patient(app, clinic)
    message_id = send(app, clinic, patient)
    with app.app_context(), tenant_scope(clinic.id):
        assert [m.id for m in dispatch.claim([message_id])] == [message_id]  # then it dies
    assert run_job(app, clinic, message_id) == 0  # another job cannot take it meanwhile

    with app.app_context():
        assert sweeper.sweep()["reclaimed"] == 0  # the lease still runs
        with tenant_scope(clinic.id):
            db.session.get(Message, (clinic.id, message_id)).lease_until = utcnow()
            db.session.commit()
        assert sweeper.sweep()["reclaimed"] == 1
    assert run_job(app, clinic, message_id) == 1
    assert run_job(app, clinic, message_id) == 0  # a second push of it finds nothing to do
    assert len(deliveries(app, clinic)) == 1


def test_redis_losing_its_queue_loses_no_message(app, clinic):
    patient = make_patient(app, clinic)
    message_id = send(app, clinic, patient)
    Redis.from_url(REDIS_URL).flushdb()
    with app.app_context():
        assert sweeper.sweep()["pushed"] == 0  # pushed a moment ago: give Redis its time
        with tenant_scope(clinic.id):
            message = db.session.get(Message, (clinic.id, message_id))
            message.enqueued_at = utcnow() - sweeper.REPUSH_AFTER
            db.session.commit()
        assert sweeper.sweep()["pushed"] == 1
    assert relais("worker", "--burst").returncode == 0
    assert len(deliveries(app, clinic)) == 1


@pytest.fixture
def flaky_app(app):
    application = create_app(
        {
            **TEST_CONFIG,
            "PLUGINS": (
                "plugins.channels.outbox.plugin",
                "plugins.regulations.fr.plugin",
                "tests.core.delivery.flaky",
            ),
        }
    )
    flaky.script.clear()
    flaky.calls.clear()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_temporary_failures_retry_then_fail_over(flaky_app):
    clinic = make_clinic(flaky_app, "demo", "FR", plugins=(*PLUGINS, "flaky"))
    with flaky_app.app_context(), system_scope():
        db.session.add_all(
            [
                ProviderRoute(country_code="FR", channel="sms", provider="flaky_sms", priority=1),
                ProviderRoute(country_code="FR", channel="sms", provider="outbox_sms", priority=2),
            ]
        )
        db.session.commit()
    patient = make_patient(flaky_app, clinic)
    message_id = send(flaky_app, clinic, patient)
    flaky.script.extend(["temporary", "timeout", "temporary"])

    for _ in range(2):  # two failures: each puts the message back with a backoff
        run_job(flaky_app, clinic, message_id)
        message = state(flaky_app, clinic, message_id)
        assert message.status == MessageStatus.PENDING and message.next_attempt_at > utcnow()
        with flaky_app.app_context(), tenant_scope(clinic.id):  # time passes
            db.session.get(Message, (clinic.id, message_id)).next_attempt_at = utcnow()
            db.session.commit()
    run_job(flaky_app, clinic, message_id)  # third failure: over to the next provider

    message = state(flaky_app, clinic, message_id)
    assert message.status == MessageStatus.SENT and message.provider == "outbox_sms"
    assert len(flaky.calls) == 3 and len(deliveries(flaky_app, clinic)) == 1
    with flaky_app.app_context(), tenant_scope(clinic.id):
        outcomes = db.session.execute(
            sa.select(Attempt.provider, Attempt.outcome).order_by(Attempt.at)
        ).all()
    # The timeout may have reached the provider: looked up before the retry, not found.
    assert outcomes == [
        ("flaky_sms", "temporary"),
        ("flaky_sms", "lost"),
        ("flaky_sms", "temporary"),
        ("outbox_sms", "accepted"),
    ]


def test_a_permanent_refusal_fails_over_at_once(flaky_app):
    clinic = make_clinic(flaky_app, "demo", "FR", plugins=(*PLUGINS, "flaky"))
    with flaky_app.app_context(), system_scope():
        for name, priority in (("flaky_sms", 1), ("outbox_sms", 2)):
            db.session.add(
                ProviderRoute(country_code="FR", channel="sms", provider=name, priority=priority)
            )
        db.session.commit()
    message_id = send(flaky_app, clinic, make_patient(flaky_app, clinic))
    flaky.script.append("permanent")
    run_job(flaky_app, clinic, message_id)
    assert state(flaky_app, clinic, message_id).provider == "outbox_sms"


def test_only_providers_of_enabled_plugins_are_used(flaky_app):
    clinic = make_clinic(flaky_app, "demo", "FR", plugins=("fr", "flaky"))
    message_id = send(flaky_app, clinic, make_patient(flaky_app, clinic))
    run_job(flaky_app, clinic, message_id)
    assert state(flaky_app, clinic, message_id).provider == "flaky_sms"
    with flaky_app.app_context(), system_scope():
        provisioning.set_country_plugin("FR", "flaky", False)
        db.session.commit()
    other = send(flaky_app, clinic, make_patient(flaky_app, clinic))
    run_job(flaky_app, clinic, other)
    assert state(flaky_app, clinic, other).status == MessageStatus.FAILED  # no SMS provider left


@pytest.fixture
def judged_app(app):
    application = create_app(
        {
            **TEST_CONFIG,
            "PLUGINS": (
                "plugins.channels.outbox.plugin",
                "tests.core.delivery.judge",
                "tests.core.delivery.judge_more",
            ),
        }
    )
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize(
    ("text", "status", "verdict"),
    [
        ("Your promo", MessageStatus.DENIED, "deny"),
        ("Sent at night", MessageStatus.SCHEDULED, "defer"),
        ("A campaign", MessageStatus.PENDING, "amend"),
        ("Your appointment", MessageStatus.PENDING, "allow"),
    ],
)
def test_relais_judge_message_verdicts_are_applied_and_recorded(judged_app, text, status, verdict):
    clinic = make_clinic(judged_app, "demo", "FR", plugins=("outbox", "judge"))
    message_id = send(judged_app, clinic, make_patient(judged_app, clinic), template=text)
    message = state(judged_app, clinic, message_id)
    assert (message.status, message.verdict) == (status, verdict)
    run_job(judged_app, clinic, message_id)
    sent = deliveries(judged_app, clinic)
    if verdict in ("deny", "defer"):
        assert sent == []
    else:
        assert sent[0][2] == (f"{text} STOP 36180" if verdict == "amend" else text)


def test_the_judge_of_a_disabled_regulation_is_not_asked(judged_app):
    clinic = make_clinic(judged_app, "demo", "FR", plugins=("outbox",))
    message_id = send(judged_app, clinic, make_patient(judged_app, clinic), template="Your promo")
    assert state(judged_app, clinic, message_id).status == MessageStatus.PENDING


def test_amendments_compose_and_each_verdict_names_its_plugin(judged_app):
    clinic = make_clinic(judged_app, "demo", "FR", plugins=("outbox", "judge", "judge_more"))
    patient = make_patient(judged_app, clinic)
    with judged_app.app_context(), tenant_scope(clinic.id):
        message = Message(purpose="campaign", content={"text": "A campaign"}, channels=["sms"])
        verdict = outbox.judge(clinic, patient, message)
    assert verdict.action == "amend" and verdict.plugin in ("judge", "judge_more")
    assert verdict.text == message.content["text"] == "A prevention campaign STOP 36180"
    message_id = send(judged_app, clinic, patient, purpose="campaign", template="A campaign")
    run_job(judged_app, clinic, message_id)
    assert deliveries(judged_app, clinic)[0][2] == "A prevention campaign STOP 36180"


def test_without_a_regulation_plugin_only_transactional_messages_go(judged_app):
    clinic = make_clinic(judged_app, "demo", "FR", plugins=("outbox",))
    patient = make_patient(judged_app, clinic)
    campaign = state(judged_app, clinic, send(judged_app, clinic, patient, purpose="campaign"))
    assert campaign.status == MessageStatus.DENIED
    assert "no regulation plugin is enabled for France" in campaign.verdict_reason
    reminder = state(judged_app, clinic, send(judged_app, clinic, patient, purpose="reminder"))
    assert reminder.status == MessageStatus.PENDING
