"""Delivery KPIs for operators: the console page, its JSON, and /metrics for Prometheus."""

import re
from datetime import timedelta

import pyotp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Queue

from core.db import db, utcnow
from tenants import provisioning
from tenants.scoping import system_scope
from tests.worlds import (
    PASSWORD,
    REDIS_URL,
    Account,
    client_for,
    log_in,
    make_clinic,
    make_message,
    make_patient,
    make_staff,
)

PLUGINS = ("outbox", "fr")
TOKEN = "prometheus-scrapes-with-this"


@pytest.fixture
def operator(app) -> Account:
    secret = pyotp.random_base32()
    with app.app_context(), system_scope():
        account = provisioning.create_operator("ops@relais.example", "Olga Operator", PASSWORD)
        account.totp_secret, account.totp_enrolled = secret, True
        db.session.commit()
        return Account(account.id, account.email, PASSWORD, secret)


@pytest.fixture
def console(app, operator):
    client = client_for(app, "operator")
    log_in(client, operator)
    return client


@pytest.fixture
def traffic(app):
    """In the last minutes: three SMS delivered in 1, 2 and 8 s, one undelivered, one e-mail
    delivered in 3 s, a message waiting for a worker; in Berlin, one SMS delivered in 1 s."""
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    patient = make_patient(app, clinic, email="jeanne@example.org")
    start = utcnow() - timedelta(minutes=2)
    for seconds in (1, 2, 8):
        make_message(app, clinic, patient, created=start, receipt="delivered", after=seconds)
    make_message(app, clinic, patient, created=start, receipt="undelivered", after=20)
    make_message(
        app, clinic, patient, created=start, channels=("email",), receipt="delivered", after=3
    )
    make_message(app, clinic, patient, deliver=False)
    berlin = make_clinic(app, "berlin", "DE", plugins=("outbox",))
    make_message(
        app,
        berlin,
        make_patient(app, berlin, phone="+49 1512 3456789"),
        created=start,
        receipt="delivered",
        after=1,
    )
    return clinic


def row(html: str, table: str, label: str) -> list[str]:
    """The cells of the row headed ``label`` in the table under heading ``table``."""
    section = re.search(rf'<h2 id="{table}">.*?</table>', html, re.S).group(0)
    for tr in re.findall(r"<tr>(.*?)</tr>", section, re.S):
        head = re.search(r'<th scope="row">(.*?)</th>', tr, re.S)
        if head and head.group(1).strip() == label:
            return [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
    raise AssertionError(f"no row {label!r} in {table}")


# --- the page ---------------------------------------------------------------------------------


def test_the_delivery_page_shows_figures_tables_and_charts(console, traffic):
    page = console.get("/kpis")
    assert page.status_code == 200
    text = page.text
    nav = re.search(r'<nav aria-label="Main">.*?</nav>', text, re.S).group(0)
    assert re.search(r'href="/kpis" aria-current="page">Delivery</a>', nav)
    assert re.search(r'value="hour" checked', text)
    for heading in ("By country", "By clinic", "By channel", "By provider"):
        assert f">{heading}</h2>" in text
    assert "Clinic berlin (berlin)" in text and "Germany" in text  # in the reader's language
    sms = row(text, "by-channel", "SMS")
    # messages, sent, delivered, undelivered, failed, deferred, refused by rules, delivery rate
    assert sms[:8] == ["6", "5", "4", "1", "0", "0", "0", "80.0%"]
    assert sms[9] == "1.50 s"  # median of 1, 1, 2, 8 (Berlin's SMS included)
    assert sms[12] == "75.0%"  # within 5 s
    assert sms[13:] == ["5", "100.0%"]  # provider calls, availability
    # Charts: an image with a text alternative naming each bar's figures.
    chart = re.search(
        r'<svg role="img" aria-labelledby="chart-channel-title chart-channel-desc"'
        r".*?</svg>",
        text,
        re.S,
    ).group(0)
    assert '<title id="chart-channel-title">Delivery rate and speed by channel</title>' in chart
    desc = re.search(r'<desc id="chart-channel-desc">(.*?)</desc>', chart, re.S).group(1)
    assert "SMS: delivery rate 80.0%, received within 5 s 75.0%." in desc
    assert "E-mail: delivery rate 100.0%, received within 5 s 100.0%." in desc
    assert 'id="chart-provider-title"' in text


def test_a_custom_window_and_a_bad_one(console, traffic):
    long_ago = console.get("/kpis?window=custom&from=2020-01-01T00:00&to=2020-01-01T06:00")
    assert long_ago.status_code == 200
    assert "Nothing was sent in this window." in long_ago.text
    assert 'value="2020-01-01T00:00"' in long_ago.text

    backwards = console.get("/kpis?window=custom&from=2020-01-02T00:00&to=2020-01-01T00:00")
    assert backwards.status_code == 422
    assert (
        'id="f-to" name="to" type="datetime-local" value="2020-01-01T00:00" aria-invalid="true"'
        in backwards.text
    )
    assert "The end must come after the start." in backwards.text
    assert "By country" not in backwards.text  # no figures for a window that is not one

    garbled = console.get("/kpis?window=custom&from=soon&to=")
    assert garbled.status_code == 422 and "Give a date and time." in garbled.text
    assert console.get("/kpis?window=fortnight").status_code == 422


# --- the JSON ---------------------------------------------------------------------------------


def test_the_json_groups_by_what_is_asked(console, traffic):
    body = console.get("/kpis.json?group=channel").json
    rows = {r["channel"]: r for r in body["rows"]}
    assert set(rows) == {"sms", "email"}
    assert rows["sms"]["messages"] == 6  # the one no worker took yet is on SMS
    assert rows["sms"]["sent"] == 5 and rows["sms"]["delivered"] == 4
    assert rows["sms"]["delivery_rate"] == 0.8
    assert rows["sms"]["time_to_reception_s"]["p50"] == 1.5
    assert rows["sms"]["within_5s"] == 0.75
    assert rows["sms"]["availability"] == 1.0
    assert body["total"]["sent"] == 6 and body["total"]["delivered"] == 5
    assert body["group"] == "channel"

    clinics = console.get("/kpis.json?group=clinic").json["rows"]
    assert {(r["clinic"], r["clinic_name"]) for r in clinics} == {
        ("demo", "Clinic demo"),
        ("berlin", "Clinic berlin"),
    }
    countries = {r["country"]: r["sent"] for r in console.get("/kpis.json").json["rows"]}
    assert countries == {"FR": 5, "DE": 1}  # by country unless told otherwise
    providers = {r["provider"] for r in console.get("/kpis.json?group=provider").json["rows"]}
    assert providers == {"outbox_sms", "outbox_email", None}


def test_the_json_window(console, traffic):
    now = utcnow()
    recent = console.get(
        "/kpis.json",
        query_string={"from": (now - timedelta(minutes=10)).isoformat(), "to": now.isoformat()},
    ).json
    assert recent["total"]["sent"] == 6
    before = console.get(
        "/kpis.json",
        query_string={"from": "2020-01-01T00:00:00+01:00", "to": "2020-01-02T00:00:00+01:00"},
    ).json
    assert before["total"]["sent"] == 0 and before["rows"] == []
    assert before["from"] == "2020-01-01T00:00:00+01:00"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("group=tenant", "group"),
        ("from=yesterday", "from"),
        ("from=2026-03-01T10:00:00Z&to=2026-03-01T09:00:00Z", "to"),
        ("from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("to=2026-03-01T10:00:00", "to"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(console, query, field):
    answer = console.get(f"/kpis.json?{query}")
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == field
    assert answer.json["error"]["code"] == "invalid" and answer.json["error"]["message"]


def test_staff_and_strangers_see_no_kpis(app, traffic):
    staff = client_for(app, traffic.slug)
    log_in(staff, make_staff(app, traffic, "admin"))
    assert staff.get("/kpis").status_code == 404  # no such page on a clinic's host
    assert staff.get("/kpis.json").status_code == 404

    # A clinic's session is no session on the operator's host, even if a browser sent it.
    cookie = app.config["SESSION_COOKIE_NAME"]
    session = staff.get_cookie(cookie, domain=f"{traffic.slug}.relais.test")
    assert session is not None
    replayed = client_for(app, "operator")
    replayed.set_cookie(cookie, session.value, domain="operator.relais.test")
    for client in (client_for(app, "operator"), replayed):
        for path in ("/kpis", "/kpis.json"):
            answer = client.get(path)
            assert answer.status_code == 302 and "/login" in answer.location
            assert "delivery_rate" not in answer.text


# --- /metrics ---------------------------------------------------------------------------------


@pytest.fixture
def scraper(app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    return client_for(app, "operator")


def scrape(client, token=TOKEN):
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_need_a_configured_token(app):
    assert app.config["METRICS_TOKEN"] is None
    assert client_for(app, "operator").get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer "])
def test_metrics_refuse_a_missing_or_bad_token(scraper, header):
    answer = scraper.get("/metrics", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "relais_" not in answer.text


def test_metrics_are_only_on_the_operator_host(app, scraper, traffic):
    clinic = client_for(app, traffic.slug)
    answer = clinic.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404 and "relais_" not in answer.text


def test_metrics_expose_the_last_five_minutes(scraper, traffic):
    samples = scrape(scraper)
    sms = {"country": "FR", "channel": "sms", "provider": "outbox_sms"}
    assert value(samples, "relais_kpi_window_seconds") == 300
    assert value(samples, "relais_delivery_sent_messages", **sms) == 4
    assert value(samples, "relais_delivery_delivered_messages", **sms) == 3
    assert value(samples, "relais_delivery_undelivered_messages", **sms) == 1
    assert value(samples, "relais_delivery_rate_ratio", **sms) == 0.75
    assert value(samples, "relais_delivery_time_to_reception_seconds", **sms, quantile="0.5") == 2
    assert value(samples, "relais_delivery_time_to_reception_mean_seconds", **sms) == 11 / 3
    assert value(samples, "relais_delivery_within_5s_ratio", **sms) == pytest.approx(2 / 3)
    assert value(samples, "relais_provider_attempts", **sms) == 4
    assert value(samples, "relais_provider_availability_ratio", **sms) == 1
    de = {"country": "DE", "channel": "sms", "provider": "outbox_sms"}
    assert value(samples, "relais_delivery_delivered_messages", **de) == 1
    email = {"country": "FR", "channel": "email", "provider": "outbox_email"}
    assert value(samples, "relais_delivery_within_5s_ratio", **email) == 1
    # The message no worker took yet: created, on SMS, no provider.
    waiting = {"country": "FR", "channel": "sms", "provider": ""}
    assert value(samples, "relais_delivery_created_messages", **waiting) == 1
    assert value(samples, "relais_delivery_sent_messages", **waiting) == 0
    assert value(samples, "relais_messages_waiting", country="FR", status="pending") == 1
    # Clinics are not labels (their number would swamp Prometheus).
    assert not any("clinic" in dict(labels) for _name, labels in samples)
    # The RQ queues, as Redis holds them now.
    redis = Redis.from_url(REDIS_URL)
    for name in ("otp", "transactional", "reminders", "bulk"):
        assert (
            value(samples, "relais_queue_jobs", queue=name) == Queue(name, connection=redis).count
        )
    assert value(samples, "relais_queue_jobs", queue="transactional") >= 1
    assert value(samples, "relais_redis_up") == 1


def test_metrics_still_answer_when_redis_does_not(app, scraper, traffic, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens
    monkeypatch.setattr(app.extensions["relais"], "redis", None)
    samples = scrape(scraper)
    assert value(samples, "relais_redis_up") == 0
    assert not any(name == "relais_queue_jobs" for name, _labels in samples)
    assert (
        value(
            samples,
            "relais_delivery_delivered_messages",
            country="DE",
            channel="sms",
            provider="outbox_sms",
        )
        == 1
    )
