"""Provider health: a provider whose messages turn slow or fail loses its traffic to the
others of its priority, gets it back step by step once it recovers, and operators read each
shift, and why, on the console's Delivery page."""

import itertools
import random
import re
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.app import create_app
from core.clinic import settings
from core.clinic.models import Patient
from core.db import db, new_id, utcnow
from core.delivery import health, kpis, outbox, routing
from core.delivery.models import Attempt, Message, MessageStatus
from tenants.scoping import system_scope, tenant_scope
from tests.browser.test_clinic import make_operator
from tests.fakes.app_server import AppServer
from tests.fakes.infobip import API_KEY as INFOBIP_KEY
from tests.fakes.infobip import FakeInfobip
from tests.fakes.twilio import FakeTwilio
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    client_for,
    log_in,
    make_clinic,
    make_message,
    make_patient,
    start_worker,
    stop_worker,
    wait_until,
)

PLUGINS = ("fr", "sms_twilio", "sms_infobip")


def sent(app, clinic, patient, provider, count, at, takes=None, status="delivered"):
    """``count`` SMS taken by ``provider`` at ``at``, their receipts ``takes`` later (none
    yet when ``takes`` is None)."""
    ids = [make_message(app, clinic, patient, deliver=False) for _ in range(count)]
    with app.app_context(), tenant_scope(clinic.id):
        db.session.execute(
            sa.update(Message)
            .where(Message.id.in_(ids))
            .values(
                provider=provider,
                status=MessageStatus(status if takes is not None else "sent"),
                sent_at=at,
                delivered_at=at + takes if takes is not None and status == "delivered" else None,
            )
        )
        db.session.commit()


def rebalance(app, now):
    with app.app_context(), system_scope():
        return health.rebalance_if_due(now)


def shares(app, clinic, draws=2000):
    """How often each provider is chosen for an SMS of the clinic."""
    random.seed(7)
    with app.app_context(), tenant_scope(clinic.id):
        health.forget()
        candidates = routing.routes(clinic, "sms")
        chosen = Counter(routing.choose(candidates).provider for _ in range(draws))
    return {name: count / draws for name, count in chosen.items()}


def test_a_slow_provider_loses_its_traffic_and_gets_it_back(app):
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    patient = make_patient(app, clinic)
    with app.app_context(), system_scope():
        routing.set_route("FR", "twilio_sms", 1, 100)
        routing.set_route("FR", "infobip_sms", 1, 100)
        db.session.commit()
    now = utcnow()
    assert 0.4 < shares(app, clinic)["twilio_sms"] < 0.6  # equal weights, equal traffic

    # Twilio's receipts come 7 minutes late; Infobip delivers in 2 seconds.
    sent(app, clinic, patient, "twilio_sms", 25, now - timedelta(minutes=10), timedelta(minutes=7))
    sent(app, clinic, patient, "infobip_sms", 25, now - timedelta(minutes=10), timedelta(seconds=2))
    assert rebalance(app, now) == 1
    assert shares(app, clinic)["twilio_sms"] < 0.15  # 10 % of its weight: 1 in 11
    assert rebalance(app, now + timedelta(seconds=20)) == 0  # once a minute at most

    # It recovers: 20 minutes on, its new messages arrive in seconds.
    later = now + timedelta(minutes=20)
    sent(app, clinic, patient, "twilio_sms", 25, later - timedelta(minutes=6), timedelta(seconds=3))
    factors = []
    for minute in range(4):
        rebalance(app, later + timedelta(minutes=minute))
        with app.app_context(), system_scope():
            factors.append({h.provider: h.factor for h in health.current()}["twilio_sms"])
    assert factors == [0.4, 0.7, 1.0, 1.0]  # back step by step
    assert 0.4 < shares(app, clinic)["twilio_sms"] < 0.6

    with app.app_context(), system_scope():
        events = [(e.provider, e.factor_from, e.factor_to) for e in health.recent_events()]
    assert events == [
        ("twilio_sms", 0.7, 1.0),
        ("twilio_sms", 0.4, 0.7),
        ("twilio_sms", 0.1, 0.4),
        ("twilio_sms", 1.0, 0.1),
    ]

    console = client_for(app, "operator")
    log_in(console, make_operator(app))
    page = console.get("/kpis").get_data(as_text=True)
    assert "Provider health" in page and page.count("twilio_sms") >= 4
    assert "of its 25 messages of the last 15 minutes were slow or failed" in page


def test_failures_count_and_a_provider_alone_in_its_tier_keeps_its_traffic(app):
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    patient = make_patient(app, clinic)
    with app.app_context(), system_scope():
        routing.set_route("FR", "twilio_sms", 1, 100)
        routing.set_route("FR", "infobip_sms", 2, 100)  # the fallback
        db.session.commit()
    now = utcnow()
    failing = timedelta(seconds=1)
    sent(app, clinic, patient, "twilio_sms", 20, now - timedelta(minutes=3), failing, "failed")
    sent(app, clinic, patient, "twilio_sms", 80, now - timedelta(minutes=3), failing)
    assert rebalance(app, now) == 1  # 20 % failed
    assert shares(app, clinic) == {"twilio_sms": 1.0}  # nothing of its priority to take over

    with app.app_context(), system_scope():
        assert health.measure(now)["twilio_sms"] == (100, 20)  # what the shift was judged on

    # Too few messages to judge (under 20): the fallback keeps its weight, whatever failed.
    sent(app, clinic, patient, "infobip_sms", 5, now - timedelta(minutes=2), failing, "failed")
    assert rebalance(app, now + timedelta(minutes=1)) == 0


@pytest.fixture
def strict(app):
    """An app of a deployment with rules of its own."""
    application = create_app(
        {
            **TEST_CONFIG,
            "HEALTH_WINDOW_SECONDS": 120,
            "HEALTH_SLOW_SECONDS": 30,
            "HEALTH_THRESHOLD": 0.5,
            "HEALTH_MIN_SAMPLE": 4,
            "HEALTH_EVERY_SECONDS": 10,
        }
    )
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_deployment_sets_its_own_rules_and_the_page_states_them(strict):
    clinic = make_clinic(strict, "demo", "FR", plugins=PLUGINS)
    patient = make_patient(strict, clinic)
    with strict.app_context(), system_scope():
        routing.set_route("FR", "twilio_sms", 1, 100)
        routing.set_route("FR", "infobip_sms", 1, 100)
        db.session.commit()
    now = utcnow()
    # Twilio: 3 of its 5 receipts 40 s late (slow here); Infobip: 3 messages 3 minutes ago
    # (out of the window), all 40 s late.
    sent(
        strict, clinic, patient, "twilio_sms", 3, now - timedelta(seconds=90), timedelta(seconds=40)
    )
    sent(
        strict, clinic, patient, "twilio_sms", 2, now - timedelta(seconds=90), timedelta(seconds=5)
    )
    sent(
        strict, clinic, patient, "infobip_sms", 3, now - timedelta(minutes=3), timedelta(seconds=40)
    )
    assert rebalance(strict, now) == 1
    assert shifts(strict) == [("twilio_sms", 1.0, 0.1)]
    assert rebalance(strict, now + timedelta(seconds=5)) == 0  # every 10 s at most
    assert rebalance(strict, now + timedelta(minutes=2)) == 1  # out of the window: back

    console = client_for(strict, "operator")
    log_in(console, make_operator(strict))
    page = console.get("/kpis").get_data(as_text=True)
    assert "over a sliding window of 2 minutes" in page and "(10 seconds)" in page
    assert "at least 4 and 50.0% or more" in page and "more than 30 seconds" in page
    assert "of its 5 messages of the last 2 minutes were slow or failed" in page


def test_the_delivery_page_lists_failures_by_reason_without_numbers(app):
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox"))
    patient = make_patient(app, clinic)
    message_id = make_message(app, clinic, patient)
    with app.app_context(), tenant_scope(clinic.id):
        db.session.execute(
            sa.insert(Attempt).values(
                tenant_id=clinic.id, id=new_id(), message_id=message_id, at=utcnow(),
                channel="sms", provider="twilio_sms", outcome="permanent", latency_ms=80,
                error="21211: Invalid 'To' Phone Number: +33 6 12 34 56 78",
            )
        )  # fmt: skip
        db.session.execute(
            sa.update(Message).where(Message.id == message_id).values(status="undelivered")
        )
        db.session.commit()
    with app.app_context(), system_scope():
        reasons = kpis.failure_reasons(utcnow() - timedelta(hours=1), utcnow())
    assert ("refused", "21211: Invalid 'To' Phone Number: …", "twilio_sms", 1) in [
        (f.kind, f.reason, f.provider, f.count) for f in reasons
    ]
    console = client_for(app, "operator")
    log_in(console, make_operator(app))
    page = console.get("/kpis").get_data(as_text=True)
    assert "Failures by reason" in page and "Refused by the provider" in page
    assert "Not delivered (receipt)" in page
    assert "12 34 56" not in page and 'data-refresh="30"' in page
    assert "data-refresh" not in console.get(
        "/kpis?window=custom&from=2026-01-01T00:00&to=2026-01-02T00:00"
    ).get_data(as_text=True)


# --- end to end: a loopback provider slows down, then recovers ---------------------------------

# The provider's slowness is real (the fake Twilio holds its delivery reports); the sweeper's
# health step (the one the worker's sweeper runs once a minute) is called here with its clock
# minutes ahead, so that "5 minutes late" needs no 5 minutes of waiting. The rules are the
# defaults; only the worker reads the factors at each choice of a provider, not every 30 s.
FRESH_FACTORS = {"HEALTH_REMEMBER_SECONDS": 0}
WORKER_PLUGINS = (
    "plugins.channels.sms_infobip.plugin",
    "plugins.channels.sms_twilio.plugin",
    "plugins.regulations.fr.plugin",
)
SECRET = "a-webhook-secret-set-by-the-operator"
NUMBERS = itertools.count()  # each message its own text: a provider taking one twice shows


@pytest.fixture(scope="module")
def health_app(app):
    """The app serving the providers' webhooks and the console."""
    application = create_app({**TEST_CONFIG, "PLUGINS": WORKER_PLUGINS, **FRESH_FACTORS})
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def providers(health_app):
    """A French clinic whose SMS go half through a loopback Twilio, half through a loopback
    Infobip (both of priority 1, weight 100), their reports posted to the app over HTTP."""
    with (
        AppServer(health_app) as server,
        FakeTwilio(post=server.post) as twilio,
        FakeInfobip(post=server.post) as infobip,
    ):
        infobip.report_delay = 0.05  # its reports leave at once
        clinic = make_clinic(health_app, "demo", "FR", plugins=PLUGINS)
        with health_app.app_context(), system_scope():
            settings.save(
                "FR",
                "sms_twilio",
                {
                    "account_sid": twilio.account_sid,
                    "auth_token": twilio.auth_token,
                    "sender": "+33939030101",
                    "base_url": twilio.base_url,
                },
            )
            settings.save(
                "FR",
                "sms_infobip",
                {
                    "api_key": INFOBIP_KEY,
                    "base_url": infobip.url,
                    "sender": "Relais",
                    "webhook_secret": SECRET,
                },
            )
            routing.set_route("FR", "twilio_sms", 1, 100)
            routing.set_route("FR", "infobip_sms", 1, 100)
            db.session.commit()
        yield clinic, twilio, infobip
        twilio.release_callbacks()
        assert twilio.duplicates() == {} and infobip.duplicates() == []


@pytest.fixture
def health_worker():
    """A real ``relais worker`` process (with its sweeper), reading the factors at each
    choice of a provider."""
    running = start_worker(WORKER_PLUGINS, config=FRESH_FACTORS)
    yield running
    stop_worker(running)


class Carried:
    """Twilio's share of the messages the two fakes took, counted afresh at each call."""

    def __init__(self, twilio, infobip):
        self.twilio, self.infobip = twilio, infobip
        self.before = self.counts()

    def counts(self) -> tuple[int, int]:
        return len(self.twilio.messages), len(self.infobip.accepted())

    def twilio_share(self) -> float:
        now = self.counts()
        twilio, infobip = (n - b for n, b in zip(now, self.before, strict=True))
        self.before = now
        return twilio / (twilio + infobip)


def send_many(app, clinic, patients, count: int) -> list:
    """``count`` SMS confirmations (committed ten at a time, as requests would); returns once
    a provider took every one of them (``sent``, or ``delivered`` already)."""
    ids = []
    with app.app_context(), tenant_scope(clinic.id):
        for n in range(count):
            who = db.session.get(Patient, (clinic.id, patients[n % len(patients)].id))
            text = f"Votre rendez-vous n° {next(NUMBERS)} du 4 mai est confirmé."
            ids.append(outbox.send(clinic, who, "transactional", text, {}, ["sms"]).id)
            if n % 10 == 9 or n == count - 1:
                db.session.commit()
    wait_until(lambda: sum(waiting(app, clinic, ids, "sent", "delivered").values()) == count)
    return ids


def waiting(app, clinic, ids, *statuses) -> dict[str, int]:
    """How many of the messages ``ids`` have one of ``statuses``, by provider."""
    with app.app_context(), tenant_scope(clinic.id):
        return dict(
            db.session.execute(
                sa.select(Message.provider, sa.func.count())
                .where(Message.id.in_(ids), Message.status.in_(statuses))
                .group_by(Message.provider)
            ).all()
        )


def shifts(app) -> list[tuple[str, float, float]]:
    """The traffic shifts so far, oldest first."""
    with app.app_context(), system_scope():
        return [(e.provider, e.factor_from, e.factor_to) for e in health.recent_events()][::-1]


def test_a_loopback_provider_that_slows_down_loses_its_traffic_then_gets_it_back(
    health_app, providers, health_worker
):
    clinic, twilio, infobip = providers
    patients = [make_patient(health_app, clinic, phone=f"06123{n:05d}") for n in range(10)]
    carried = Carried(twilio, infobip)

    # Both healthy: equal weights, the traffic split evenly (counted at the providers), every
    # message delivered in seconds.
    first = send_many(health_app, clinic, patients, 80)
    assert 0.25 < carried.twilio_share() < 0.75
    wait_until(lambda: waiting(health_app, clinic, first, "sent") == {})
    start = utcnow()
    assert rebalance(health_app, start + timedelta(minutes=1)) == 0

    # Twilio slows down: it answers 503 to a few calls (those messages go again a moment
    # later), takes the others, but holds their delivery reports.
    twilio.hold_callbacks()
    twilio.fail_next(3, status=503, message="Service Unavailable")
    slow = send_many(health_app, clinic, patients, 40)
    wait_until(lambda: set(waiting(health_app, clinic, slow, "sent")) == {"twilio_sms"})
    held = waiting(health_app, clinic, slow, "sent")["twilio_sms"]
    # The sweeper's next passes: 5 minutes on, Twilio's reports are still missing.
    assert rebalance(health_app, start + timedelta(minutes=6)) == 1
    assert shifts(health_app) == [("twilio_sms", 1.0, 0.1)]
    with health_app.app_context(), system_scope():
        event = health.recent_events()[0]
        # Every message it took and its 503s are counted, the held and the 503s as bad.
        assert event.sample - len(twilio.messages) >= 3
        assert round(event.share * event.sample) >= held + 3
    carried.twilio_share()  # counted from here: the 40 above went at its full weight
    slow += send_many(health_app, clinic, patients, 60)
    assert carried.twilio_share() < 0.3  # 10 % of its weight: about 1 message in 11
    assert rebalance(health_app, start + timedelta(minutes=7)) == 0  # still slow

    # It recovers: the reports it held arrive, and new ones come at once. Measured minute after
    # minute, it gets its weight back step by step.
    twilio.release_callbacks()
    wait_until(lambda: waiting(health_app, clinic, slow, "sent") == {})
    for minute in (8, 9, 10):  # only its three 503s are left: under 7.5 %
        assert rebalance(health_app, start + timedelta(minutes=minute)) == 1
    assert shifts(health_app) == [
        ("twilio_sms", 1.0, 0.1),
        ("twilio_sms", 0.1, 0.4),
        ("twilio_sms", 0.4, 0.7),
        ("twilio_sms", 0.7, 1.0),
    ]
    send_many(health_app, clinic, patients, 80)
    assert 0.25 < carried.twilio_share() < 0.75

    # Operators read each shift and why on the Delivery page.
    console = client_for(health_app, "operator")
    log_in(console, make_operator(health_app))
    page = console.get("/kpis").get_data(as_text=True)
    assert page.count("twilio_sms") >= 5  # its measure, the chart, four shifts
    assert re.search(r"of its \d+ messages of the last 15 minutes were slow or failed", page)
    assert page.count("recovering: ") == 3
