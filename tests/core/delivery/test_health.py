"""Provider health: a provider whose messages turn slow or fail loses its traffic to the
others of its priority, gets it back step by step once it recovers, and operators read each
shift, and why, on the console's Delivery page."""

import random
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from core.db import db, new_id, utcnow
from core.delivery import health, kpis, routing
from core.delivery.models import Attempt, Message, MessageStatus
from tenants.scoping import system_scope, tenant_scope
from tests.browser.test_clinic import make_operator
from tests.worlds import client_for, log_in, make_clinic, make_message, make_patient

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
