"""Delivery KPIs: messages sent through the real pipeline, receipts applied as providers would
send them, then the figures checked against what we know happened."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.app import create_app
from core.db import db, utcnow
from core.delivery import dispatch, kpis, receipts, routing
from core.delivery.models import Attempt, Message, MessageStatus
from core.delivery.providers import CircuitBreaker, Receipt
from core.schema import upgrade
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.core.delivery import flaky
from tests.worlds import TEST_CONFIG, make_clinic, make_message, make_patient

PLUGINS = ("outbox", "fr")
T0 = (utcnow() - timedelta(hours=3)).replace(second=0, microsecond=0)
WINDOW = (T0 - timedelta(minutes=1), T0 + timedelta(minutes=30))


def message(app, tenant, patient, created, **kwargs):
    return make_message(app, tenant, patient, created=created, **kwargs)


def figures(app, by=(), start=WINDOW[0], end=WINDOW[1]):
    with app.app_context(), system_scope():
        rows = kpis.delivery_kpis(start, end, by)
    return {row.key if by else (): row for row in rows}


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=PLUGINS)


@pytest.fixture
def known_world(app, clinic):
    """Six SMS (four delivered in 1, 2, 3 and 10 s, one undelivered, one without receipt
    yet), an e-mail delivered in 4 s, a message to a landline no channel could take, and
    a delivered SMS from before the window."""
    mobile = make_patient(app, clinic, email="jeanne@example.org")
    landline = make_patient(app, clinic, first_name="Paul", phone="0142685300")
    at = [T0 + timedelta(minutes=i) for i in range(10)]
    for i, seconds in enumerate((1, 2, 3, 10)):
        message(app, clinic, mobile, at[i], receipt="delivered", after=seconds)
    message(app, clinic, mobile, at[4], receipt="undelivered", after=30)
    message(app, clinic, mobile, at[5])
    message(app, clinic, mobile, at[6], channels=("email",), receipt="delivered", after=4)
    message(app, clinic, landline, at[7])
    message(app, clinic, mobile, T0 - timedelta(hours=1), receipt="delivered", after=60)
    return clinic


def test_figures_by_channel(app, known_world):
    rows = figures(app, ("channel",))
    assert set(rows) == {("sms",), ("email",), (None,)}

    sms = rows[("sms",)]
    assert (sms.messages, sms.sent, sms.delivered, sms.undelivered, sms.failed) == (6, 6, 4, 1, 0)
    assert sms.delivery_rate == pytest.approx(4 / 6)
    assert sms.mean_s == pytest.approx(4.0)  # (1 + 2 + 3 + 10) / 4
    assert sms.p50_s == pytest.approx(2.5)
    assert sms.p95_s == pytest.approx(8.95)  # 3 + (10 - 3) * 0.85, as percentile_cont
    assert sms.p99_s == pytest.approx(9.79)
    assert sms.within_share == pytest.approx(0.75)
    assert (sms.attempts, sms.temporary_failures, sms.availability) == (6, 0, 1.0)

    email = rows[("email",)]
    assert (email.sent, email.delivered, email.delivery_rate) == (1, 1, 1.0)
    assert (email.mean_s, email.p50_s, email.within_share) == (4.0, 4.0, 1.0)

    nowhere = rows[(None,)]  # the landline: no channel of its plan could carry it
    assert (nowhere.messages, nowhere.sent, nowhere.failed) == (1, 0, 1)
    assert nowhere.delivery_rate is None and nowhere.mean_s is None
    assert nowhere.attempts == 0 and nowhere.availability is None


def test_totals_and_json(app, known_world):
    (total,) = figures(app).values()
    assert (total.messages, total.sent, total.delivered, total.undelivered, total.failed) == (
        8,
        7,
        5,
        1,
        1,
    )
    assert total.delivery_rate == pytest.approx(5 / 7)
    assert total.mean_s == pytest.approx(4.0)  # 1, 2, 3, 4, 10
    assert total.p50_s == pytest.approx(3.0)
    assert total.p95_s == pytest.approx(8.8)
    assert total.within_share == pytest.approx(0.8)
    body = total.as_json()
    assert body["delivery_rate"] == round(5 / 7, 4)
    assert body["time_to_reception_s"] == {"mean": 4.0, "p50": 3.0, "p95": 8.8, "p99": 9.76}
    assert body["within_5s"] == 0.8 and body["availability"] == 1.0


def test_grouping_by_provider(app, known_world):
    rows = figures(app, ("provider",))
    assert set(rows) == {("outbox_sms",), ("outbox_email",), (None,)}
    assert rows[("outbox_sms",)].delivered == 4 and rows[("outbox_sms",)].attempts == 6
    assert rows[("outbox_email",)].delivered == 1 and rows[("outbox_email",)].attempts == 1
    assert rows[(None,)].failed == 1


def test_the_window_bounds_messages_and_attempts(app, known_world):
    before = figures(app, start=T0 - timedelta(hours=2), end=T0)[()]
    assert (before.messages, before.delivered, before.attempts) == (1, 1, 1)
    assert before.mean_s == pytest.approx(60.0) and before.within_share == 0.0

    first_three = figures(app, start=T0, end=T0 + timedelta(minutes=3))[()]
    assert (first_three.messages, first_three.delivered, first_three.attempts) == (3, 3, 3)
    assert first_three.p50_s == pytest.approx(2.0)

    (empty,) = figures(app, start=T0 + timedelta(days=1), end=T0 + timedelta(days=2)).values()
    assert (empty.messages, empty.sent, empty.delivery_rate, empty.p50_s) == (0, 0, None, None)


def test_grouping_by_country_and_clinic(app, known_world):
    berlin = make_clinic(app, "berlin", "DE", plugins=("outbox",))
    patient = make_patient(app, berlin, phone="+49 1512 3456789")
    message(app, berlin, patient, T0, receipt="delivered", after=1.5)

    countries = figures(app, ("country",))
    assert set(countries) == {("FR",), ("DE",)}
    assert (countries[("DE",)].sent, countries[("DE",)].p50_s) == (1, 1.5)
    assert countries[("FR",)].sent == 7

    clinics = figures(app, ("clinic",))
    assert set(clinics) == {("demo",), ("berlin",)}
    assert clinics[("demo",)].delivered == 5
    with app.app_context(), system_scope():
        assert kpis.clinic_names(["berlin", None]) == {"berlin": "Clinic berlin"}

    several = figures(app, ("country", "channel", "provider"))
    assert several[("DE", "sms", "outbox_sms")].delivered == 1
    assert several[("FR", "sms", "outbox_sms")].delivered == 4


def test_a_clinics_scope_sees_only_its_own_figures(app, known_world):
    berlin = make_clinic(app, "berlin", "DE", plugins=("outbox",))
    message(app, berlin, make_patient(app, berlin, phone="+49 1512 3456789"), T0)
    with app.app_context(), tenant_scope(berlin.id):
        (row,) = kpis.delivery_kpis(*WINDOW)
    assert (row.messages, row.sent, row.attempts) == (1, 1, 1)


def test_a_scheduled_message_counts_from_when_it_was_due(app, clinic):
    patient = make_patient(app, clinic)
    due = T0 + timedelta(hours=1)
    message(app, clinic, patient, T0, receipt="delivered", after=3602, not_before=due)
    (row,) = figures(app).values()
    assert row.mean_s == pytest.approx(2.0)  # not an hour: it was due at not_before
    assert row.within_share == 1.0


def test_a_second_receipt_changes_no_figure(app, clinic):
    patient = make_patient(app, clinic)
    message_id = message(app, clinic, patient, T0, receipt="delivered", after=2)
    with app.app_context(), tenant_scope(clinic.id):
        assert (
            receipts.apply_receipt(
                "outbox_sms",
                Receipt(status="delivered", at=T0 + timedelta(seconds=9), message_id=message_id),
            )
            is None
        )
        db.session.commit()
    assert figures(app)[()].mean_s == pytest.approx(2.0)


def test_unknown_grouping_is_refused(app):
    with app.app_context(), system_scope(), pytest.raises(ValueError, match="grouping"):
        kpis.delivery_kpis(*WINDOW, by=("tenant",))


def test_percentile_cont_interpolates_as_postgresql_does():
    assert kpis.percentile_cont([], 0.5) is None
    assert kpis.percentile_cont([7.0], 0.99) == 7.0
    assert kpis.percentile_cont([1.0, 2.0, 3.0, 10.0], 0.5) == pytest.approx(2.5)
    assert kpis.percentile_cont([1.0, 2.0, 3.0, 10.0], 0.95) == pytest.approx(8.95)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-03-01T09:00:00"}, "from"),  # no offset: which 09:00?
        ({"from": "2026-03-01T10:00:00+00:00", "to": "2026-03-01T09:00:00+00:00"}, "to"),
        ({"from": "2026-01-01T00:00:00+00:00", "to": "2026-06-01T00:00:00+00:00"}, "from"),
    ],
)
def test_bad_windows_name_their_field(app, args, field):
    with app.test_request_context(), pytest.raises(kpis.ValidationError) as caught:
        kpis.parse_window(args)
    assert caught.value.field == field


def test_windows():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert kpis.parse_window({}, now) == (now - timedelta(hours=1), now)
    start, end = kpis.parse_window({"from": "2026-03-01T09:00:00 01:00", "to": "2026-03-01T10:00Z"})
    assert (start.utcoffset(), end - start) == (timedelta(hours=1), timedelta(hours=2))
    assert kpis.preset_window("week", now) == (now - timedelta(days=7), now)
    assert kpis.parse_local_window("2026-03-01T09:00", "2026-03-01T10:30") == (
        datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 10, 30, tzinfo=UTC),
    )


# --- provider availability ----------------------------------------------------------------------


@pytest.fixture
def flaky_app(app, monkeypatch):
    monkeypatch.setattr(routing, "breaker", CircuitBreaker())  # no failures of other tests
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


def test_provider_availability_counts_temporary_failures(flaky_app):
    clinic = make_clinic(flaky_app, "demo", "FR", plugins=(*PLUGINS, "flaky"))
    with flaky_app.app_context(), system_scope():
        for name, priority in (("flaky_sms", 1), ("outbox_sms", 2)):
            db.session.add(
                ProviderRoute(country_code="FR", channel="sms", provider=name, priority=priority)
            )
        db.session.commit()
    patient = make_patient(flaky_app, clinic)
    flaky.script.extend(["temporary", "timeout"])  # two calls fail, then the provider is back
    retried = message(flaky_app, clinic, patient, T0)  # the first failure: retried later
    for _ in range(2):
        with flaky_app.app_context(), tenant_scope(clinic.id):
            db.session.get(Message, (clinic.id, retried)).next_attempt_at = utcnow()
            db.session.commit()
            dispatch.deliver([str(retried)])
    message(flaky_app, clinic, patient, T0 + timedelta(seconds=1))  # taken at once
    with flaky_app.app_context(), tenant_scope(clinic.id):
        outcomes = db.session.scalars(sa.select(Attempt.outcome).order_by(Attempt.at)).all()
        assert db.session.get(Message, (clinic.id, retried)).status == MessageStatus.SENT
    # the timeout's outcome was unknown: looked up before the retry, found lost
    assert sorted(outcomes) == ["accepted", "accepted", "lost", "temporary"]

    with flaky_app.app_context(), system_scope():
        rows = {r.key: r for r in kpis.delivery_kpis(T0, utcnow(), ("provider",))}
    assert (rows[("flaky_sms",)].attempts, rows[("flaky_sms",)].temporary_failures) == (4, 2)
    assert rows[("flaky_sms",)].availability == pytest.approx(0.5)
    assert rows[("flaky_sms",)].sent == 2


# --- SQLite (the embedded demo) ---------------------------------------------------------------


@pytest.fixture
def sqlite_app(tmp_path):
    application = create_app(
        {
            **TEST_CONFIG,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'relais.db'}",
            "REDIS_URL": None,
        }
    )
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_same_figures_on_sqlite(sqlite_app):
    clinic = make_clinic(sqlite_app, "demo", "FR", plugins=PLUGINS)
    mobile = make_patient(sqlite_app, clinic, email="jeanne@example.org")
    for i, seconds in enumerate((1, 2, 3, 10)):
        message(
            sqlite_app,
            clinic,
            mobile,
            T0 + timedelta(minutes=i),
            receipt="delivered",
            after=seconds,
        )
    message(sqlite_app, clinic, mobile, T0 + timedelta(minutes=5), channels=("email",))

    rows = figures(sqlite_app, ("channel",))
    sms = rows[("sms",)]
    assert (sms.sent, sms.delivered, sms.attempts) == (4, 4, 4)
    assert sms.mean_s == pytest.approx(4.0, abs=1e-3)  # julianday arithmetic: ms precision
    assert sms.p50_s == pytest.approx(2.5, abs=1e-3)
    assert sms.p95_s == pytest.approx(8.95, abs=1e-3)
    assert sms.within_share == 0.75
    assert rows[("email",)].sent == 1 and rows[("email",)].delivered == 0


def test_several_groupings_at_once_give_the_same_figures(app, known_world):
    berlin = make_clinic(app, "berlin", "DE", plugins=("outbox",))
    message(app, berlin, make_patient(app, berlin, phone="+49 1512 3456789"), T0)
    groupings = [(name,) for name in kpis.GROUPS] + [("country", "provider"), ()]
    with app.app_context(), system_scope():
        together = kpis.kpi_tables(*WINDOW, groupings)  # one pass: GROUPING SETS
        apart = {g: kpis.delivery_kpis(*WINDOW, g) for g in groupings}
    assert set(together) == set(groupings)
    for grouping in groupings:
        assert together[grouping] == apart[grouping], grouping
