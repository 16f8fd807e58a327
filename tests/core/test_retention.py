"""Retention: what each country keeps no longer is erased, then deleted; nothing else is.

France has the test plugin ``short_retention`` enabled (contents 30 days, records 90);
Germany has no plugin answering, so the core's default applies (365 days, 3 years).
"""

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from redis import Redis

from core.app import create_app
from core.db import db, utcnow
from core.delivery import retention, sweeper
from core.delivery.models import (
    Attempt,
    EarlyReceipt,
    InboundMessage,
    Message,
    MessageEvent,
    MessageStatus,
)
from core.regulation import DEFAULT_RETENTION
from core.web.cli import main
from tenants.scoping import system_scope, tenant_scope
from tests.core.short_retention import SHORT
from tests.worlds import (
    REDIS_URL,
    TEST_CONFIG,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

NOW = utcnow().replace(microsecond=0)
ZERO = dict.fromkeys(retention.KINDS, 0)


@pytest.fixture
def kept_app(app):
    """The app with the test policy plugin, the outbox channel and voice (its player)."""
    application = create_app(
        {
            **TEST_CONFIG,
            "PLUGINS": (
                "plugins.channels.outbox.plugin",
                "plugins.channels.voice_twilio.plugin",
                "tests.core.short_retention",
            ),
        }
    )
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def days_ago(days: float):
    return NOW - timedelta(days=days)


def add_message(app, clinic, patient, status, created, ended=None, **content):
    """A message row as the pipeline leaves it: its history and a provider attempt."""
    with app.app_context(), tenant_scope(clinic.id):
        message = Message(
            patient_id=patient.id,
            purpose="transactional",
            status=status,
            channels=["sms"],
            exhausted=[],
            content={"text": f"Rendez-vous mardi {uuid.uuid4().hex[:6]}", **content},
            created_at=created,
            finished_at=ended,
        )
        db.session.add(message)
        db.session.flush()
        db.session.add(MessageEvent(message_id=message.id, status="pending", at=created))
        db.session.add(
            Attempt(
                message_id=message.id,
                at=created,
                channel="sms",
                provider="outbox_sms",
                outcome="accepted",
                latency_ms=12,
            )
        )
        db.session.commit()
        return message.id


def add_reply(app, clinic, patient, at, text="OUI"):
    with app.app_context(), tenant_scope(clinic.id):
        reply = InboundMessage(
            at=at,
            channel="sms",
            provider="outbox_sms",
            sender=patient.phone,
            patient_id=patient.id,
            text=text,
        )
        db.session.add(reply)
        db.session.commit()
        return reply.id


def add_early_receipt(app, clinic, at):
    with app.app_context(), tenant_scope(clinic.id):
        receipt = EarlyReceipt(provider="outbox_sms", provider_ref="x", status="delivered", at=at)
        db.session.add(receipt)
        db.session.commit()
        return receipt.id


def message_state(app, clinic, message_id):
    """(content, steps of its history, attempts), or None once deleted."""
    with app.app_context(), tenant_scope(clinic.id):
        message = db.session.get(Message, (clinic.id, message_id))
        if message is None:
            return None
        steps = db.session.scalars(
            sa.select(MessageEvent.status)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.at)
        ).all()
        attempts = db.session.scalar(
            sa.select(sa.func.count()).select_from(Attempt).where(Attempt.message_id == message_id)
        )
        return message.content, list(steps), attempts


def reply_state(app, clinic, reply_id):
    with app.app_context(), tenant_scope(clinic.id):
        reply = db.session.get(InboundMessage, (clinic.id, reply_id))
        return None if reply is None else (reply.text, reply.sender)


def rows_left(app, model, message_id) -> int:
    """Rows of ``model`` for a message, seen by the platform (history and attempts)."""
    with app.app_context(), system_scope():
        return db.session.scalar(
            sa.select(sa.func.count()).select_from(model).where(model.message_id == message_id)
        )


@pytest.fixture
def world(kept_app):
    """Two countries, each with messages, replies and early receipts of every age."""
    app = kept_app
    paris = make_clinic(app, "paris", "FR", plugins=("outbox", "voice_twilio", "short_retention"))
    berlin = make_clinic(app, "berlin", "DE", plugins=("outbox",))
    jeanne = make_patient(app, paris)
    hans = make_patient(app, berlin, first_name="Hans", last_name="Weber", phone="+4915112345678")
    delivered, failed = MessageStatus.DELIVERED, MessageStatus.FAILED
    ics = {"filename": "rdv.ics", "mime_type": "text/calendar", "data": "QkVHSU4="}
    mail = {"subject": "RDV", "attachments": [ics]}
    w = {
        "paris": paris,
        "berlin": berlin,
        # France: contents 30 days, records 90.
        "fr_recent": add_message(app, paris, jeanne, delivered, days_ago(11), days_ago(10)),
        "fr_old": add_message(app, paris, jeanne, delivered, days_ago(45), days_ago(44)),
        "fr_mail": add_message(app, paris, jeanne, delivered, days_ago(50), days_ago(50), **mail),
        "fr_ancient": add_message(app, paris, jeanne, failed, days_ago(100), days_ago(100)),
        # Created long ago, ended lately (sent late): counted from its end, so kept whole.
        "fr_ended_lately": add_message(app, paris, jeanne, delivered, days_ago(100), days_ago(20)),
        # Never touched, however old: still on their way.
        "fr_pending": add_message(app, paris, jeanne, MessageStatus.PENDING, days_ago(200)),
        "fr_scheduled": add_message(app, paris, jeanne, MessageStatus.SCHEDULED, days_ago(200)),
        "fr_sending": add_message(app, paris, jeanne, MessageStatus.SENDING, days_ago(200)),
        "fr_sent": add_message(app, paris, jeanne, MessageStatus.SENT, days_ago(200)),
        "fr_reply_recent": add_reply(app, paris, jeanne, days_ago(5)),
        "fr_reply_old": add_reply(app, paris, jeanne, days_ago(40), text="Je serai en retard"),
        "fr_reply_ancient": add_reply(app, paris, jeanne, days_ago(95)),
        "fr_receipt_recent": add_early_receipt(app, paris, days_ago(10)),
        "fr_receipt_ancient": add_early_receipt(app, paris, days_ago(100)),
        # Germany: the default, 365 days and 3 years.
        "de_45": add_message(app, berlin, hans, delivered, days_ago(45), days_ago(44)),
        "de_400": add_message(app, berlin, hans, delivered, days_ago(400), days_ago(400)),
        "de_1200": add_message(app, berlin, hans, failed, days_ago(1200), days_ago(1200)),
        "de_reply_400": add_reply(app, berlin, hans, days_ago(400)),
        "de_receipt_100": add_early_receipt(app, berlin, days_ago(100)),
    }
    return w


EXPECTED = {
    "FR": {
        "messages_erased": 2,
        "messages_deleted": 1,
        "replies_erased": 1,
        "replies_deleted": 1,
        "early_receipts_deleted": 1,
    },
    "DE": {
        "messages_erased": 1,
        "messages_deleted": 1,
        "replies_erased": 1,
        "replies_deleted": 0,
        "early_receipts_deleted": 0,
    },
}


def test_each_country_has_its_policy_from_its_enabled_plugins_only(kept_app, world):
    with kept_app.app_context(), system_scope():
        assert retention.countries() == ["DE", "FR"]
        assert retention.policy_for("FR") == (SHORT, "short_retention")
        assert retention.policy_for("DE") == (DEFAULT_RETENTION, None)  # not enabled there


def test_purge_erases_then_deletes_what_is_past_its_time_and_nothing_else(kept_app, world):
    app, w = kept_app, world
    paris, berlin = w["paris"], w["berlin"]
    with app.app_context():
        report = retention.purge_by_country(NOW)
    assert {code: r["counts"] for code, r in report.items()} == EXPECTED
    assert report["FR"]["policy"] == SHORT and report["DE"]["policy"] == DEFAULT_RETENTION

    # Erased: the content is a marker; history (with the step) and attempts stay.
    for key in ("fr_old", "fr_mail"):
        content, steps, attempts = message_state(app, paris, w[key])
        assert content == {"erased": True, "after_days": 30, "country": "FR"}  # attachments too
        assert steps == ["pending", "erased"] and attempts == 1
    content, steps, _ = message_state(app, berlin, w["de_400"])
    assert content == {"erased": True, "after_days": 365, "country": "DE"}

    # Deleted, with their history and attempts.
    for clinic, key in ((paris, "fr_ancient"), (berlin, "de_1200")):
        assert message_state(app, clinic, w[key]) is None
        assert rows_left(app, MessageEvent, w[key]) == rows_left(app, Attempt, w[key]) == 0

    # Untouched: recent, ended lately, still on their way, or under Germany's longer policy.
    for clinic, key in (
        (paris, "fr_recent"),
        (paris, "fr_ended_lately"),
        (paris, "fr_pending"),
        (paris, "fr_scheduled"),
        (paris, "fr_sending"),
        (paris, "fr_sent"),
        (berlin, "de_45"),
    ):
        content, steps, attempts = message_state(app, clinic, w[key])
        assert content["text"].startswith("Rendez-vous mardi") and "erased" not in steps, key

    # Replies: the text and the sender's number erased, then the row deleted.
    assert reply_state(app, paris, w["fr_reply_recent"]) == ("OUI", "+33612345678")
    assert reply_state(app, paris, w["fr_reply_old"]) == ("", "")
    assert reply_state(app, paris, w["fr_reply_ancient"]) is None
    assert reply_state(app, berlin, w["de_reply_400"]) == ("", "")

    with app.app_context(), system_scope():
        receipts = set(db.session.scalars(sa.select(EarlyReceipt.id)))
    assert receipts == {w["fr_receipt_recent"], w["de_receipt_100"]}


def test_a_second_pass_finds_nothing_to_do(kept_app, world):
    with kept_app.app_context():
        first = retention.purge(NOW)
        assert first == {k: EXPECTED["FR"][k] + EXPECTED["DE"][k] for k in retention.KINDS}
        assert retention.purge(NOW) == ZERO
    content, steps, _ = message_state(kept_app, world["paris"], world["fr_old"])
    assert steps.count("erased") == 1


def test_small_batches_give_the_same_result(kept_app, world, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 1)  # every batch commits on its own
    with kept_app.app_context():
        assert retention.purge(NOW) == {
            k: EXPECTED["FR"][k] + EXPECTED["DE"][k] for k in retention.KINDS
        }
        assert retention.purge(NOW) == ZERO


def test_the_purge_logs_counts_never_contents(kept_app, world, caplog):
    caplog.set_level("INFO")
    with kept_app.app_context():
        retention.purge(NOW)
    lines = [r.getMessage() for r in caplog.records if "retention purge" in r.getMessage()]
    assert len(lines) == 1
    assert "FR messages_erased=2 messages_deleted=1" in lines[0]
    assert "Rendez-vous" not in caplog.text and "retard" not in caplog.text


def test_relais_purge_dry_run_then_purge_then_nothing(kept_app, world):
    runner = kept_app.test_cli_runner()
    fr_line = (
        "FR  contents 30 days, records 90 days (short_retention plugin): messages 2 erased, "
        "1 deleted; replies 1 erased, 1 deleted; early receipts 1 deleted"
    )
    de_line = (
        "DE  contents 365 days, records 1095 days (default): messages 1 erased, 1 deleted; "
        "replies 1 erased, 0 deleted; early receipts 0 deleted"
    )

    dry = runner.invoke(main, ["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [de_line, fr_line, "Dry run: nothing was changed."]
    assert "Clinics" in dry.stderr  # the progress bar (hidden off a terminal: its label)
    assert message_state(kept_app, world["paris"], world["fr_ancient"]) is not None

    done = runner.invoke(main, ["purge", "--country", "fr"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [fr_line]
    assert message_state(kept_app, world["paris"], world["fr_ancient"]) is None
    assert message_state(kept_app, world["berlin"], world["de_1200"]) is not None

    runner.invoke(main, ["purge"])
    again = runner.invoke(main, ["purge"])
    assert again.exit_code == 0
    assert all(" 0 erased, 0 deleted" in line for line in again.stdout.splitlines())


def test_relais_purge_refuses_an_unknown_country(kept_app, world):
    result = kept_app.test_cli_runner().invoke(main, ["purge", "--country", "XX"])
    assert result.exit_code == 2
    assert "Unknown country" in result.stderr
    assert message_state(kept_app, world["paris"], world["fr_ancient"]) is not None


def test_staff_see_that_a_message_was_erased(kept_app, world):
    app, paris = kept_app, world["paris"]
    with app.app_context():
        retention.purge(NOW)
    client = client_for(app, paris.slug)
    log_in(client, make_staff(app, paris, "secretary"))
    english = {"lang": "en", "next": "/", "csrf_token": csrf_token(client, "/")}
    client.post("/language", data=english)

    page = client.get(f"/messages/{world['fr_old']}")
    assert page.status_code == 200
    assert "Erased after 30 days (retention rules of France)" in page.text
    assert "Rendez-vous mardi" not in page.text
    assert "Erased (retention)" in page.text  # the step of its history
    assert 'class="text erased"' in page.text and "voice-audio" not in page.text
    assert client.get(f"/voice/messages/{world['fr_old']}.wav").status_code == 404

    kept = client.get(f"/messages/{world['fr_recent']}")
    assert kept.status_code == 200 and "Rendez-vous mardi" in kept.text
    assert "Erased" not in kept.text
    assert client.get("/messages").status_code == 200  # the log never read contents anyway


def test_the_worker_purges_at_most_once_a_day_across_workers(kept_app, world):
    app, w = kept_app, world
    first, second = sweeper.Sweeper(app, purge=True), sweeper.Sweeper(app, purge=True)
    first.tick()
    assert first.purging is not None
    first.purging.join(timeout=60)
    assert message_state(app, w["paris"], w["fr_ancient"]) is None
    ttl = Redis.from_url(REDIS_URL).ttl(sweeper.PURGE_KEY)
    assert 86000 < ttl <= 86400

    later = add_message(app, w["paris"], make_patient(app, w["paris"]), "failed", days_ago(300))
    second.tick()
    first.tick()
    assert second.purging is None and not first.purging.is_alive()
    assert message_state(app, w["paris"], later) is not None  # tomorrow's work

    Redis.from_url(REDIS_URL).delete(sweeper.PURGE_KEY)  # a day later
    second.tick()
    second.purging.join(timeout=60)
    assert message_state(app, w["paris"], later) is None


def test_a_sweeper_without_purge_never_purges(kept_app, world):
    plain = sweeper.Sweeper(kept_app)
    plain.tick()
    assert plain.purging is None
    assert message_state(kept_app, world["paris"], world["fr_ancient"]) is not None


def test_purge_works_on_sqlite(tmp_path):
    """The embedded first run: SQLite, no Redis, no row-level security."""
    from core.schema import upgrade

    app = create_app(
        {
            **TEST_CONFIG,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'relais.db'}",
            "REDIS_URL": None,
            "PLUGINS": ("plugins.channels.outbox.plugin", "tests.core.short_retention"),
        }
    )
    with app.app_context():
        upgrade()
    paris = make_clinic(app, "paris", "FR", plugins=("outbox", "short_retention"))
    jeanne = make_patient(app, paris)
    old = add_message(app, paris, jeanne, MessageStatus.DELIVERED, days_ago(45), days_ago(45))
    ancient = add_message(app, paris, jeanne, MessageStatus.FAILED, days_ago(99), days_ago(99))
    pending = add_message(app, paris, jeanne, MessageStatus.PENDING, days_ago(99))
    reply = add_reply(app, paris, jeanne, days_ago(40))
    with app.app_context():
        counts = retention.purge(NOW)
        assert retention.purge(NOW) == ZERO
    assert (counts["messages_erased"], counts["messages_deleted"], counts["replies_erased"]) == (
        1,
        1,
        1,
    )
    assert message_state(app, paris, old)[0]["erased"] is True
    assert message_state(app, paris, ancient) is None
    assert rows_left(app, Attempt, ancient) == 0
    assert message_state(app, paris, pending)[0]["text"].startswith("Rendez-vous mardi")
    assert reply_state(app, paris, reply) == ("", "")
    with app.app_context():
        db.engine.dispose()
