"""Status callbacks: a clinic's software is told of every status change and reply, signed,
in order, retried after failures, never at a private address unless the deployment allows it,
and never told of another clinic's messages."""

import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import settings
from core.db import db, utcnow
from core.delivery import receipts
from core.delivery.providers import Inbound
from plugins.features.callbacks import delivery
from plugins.features.callbacks.models import Attempt, Endpoint, Event
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.callback_receiver import CallbackReceiver
from tests.worlds import (
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_message,
    make_patient,
    make_staff,
    wait_until,
)

PLUGINS = ("fr", "outbox", "callbacks")
PAGE = "/settings/callbacks/"
API_DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def documented_verify():
    """The ``verify`` function of docs/api.md's "Verifying a callback", as integrators copy it."""
    text = API_DOC.read_text()
    section = text[text.index("### Verifying a callback") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


def allow_loopback(app, country="FR", allow="yes") -> None:
    """What the tests' deployment allows: http and private addresses, retries at once."""
    with app.app_context(), system_scope():
        settings.save(country, "callbacks", {"allow_private": allow, "retry_seconds": "0"})
        db.session.commit()


def clinic_admin(app, slug):
    clinic = make_clinic(app, slug, plugins=PLUGINS)
    browser = client_for(app, slug)
    log_in(browser, make_staff(app, clinic, "admin"))
    return clinic, browser


def register(browser, url):
    return browser.post(PAGE, data={"url": url, "csrf_token": csrf_token(browser, PAGE)})


def secret_of(page) -> str:
    return re.search(r'data-testid="new-secret">([^<]+)<', page.text).group(1)


def endpoints(app, clinic) -> list[str]:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalars(sa.select(Endpoint.url)).all()


def deliver_now(app, clinic) -> None:
    """What the sweeper and a worker's job do, in this process: claim what is due, send it."""
    with app.app_context(), tenant_scope(clinic.id):
        due = db.session.scalars(
            sa.select(Event.id).where(Event.state == "waiting").order_by(Event.at, Event.id)
        ).all()
        db.session.rollback()
        delivery.deliver([str(i) for i in due])
        db.session.commit()


def test_callbacks_of_a_message_sent_by_a_worker_arrive_signed_and_only_to_its_clinic(app, worker):
    allow_loopback(app)
    verify = documented_verify()
    with CallbackReceiver() as ours, CallbackReceiver() as theirs:
        clinic, browser = clinic_admin(app, "demo")
        other, other_browser = clinic_admin(app, "other")
        shown = register(browser, ours.url)
        assert shown.status_code == 200
        secret = secret_of(shown)
        assert "il ne sera plus affiché" in shown.text  # the clinic reads French
        assert secret not in browser.get(PAGE).text  # shown once
        register(other_browser, theirs.url)

        patient = make_patient(app, clinic)
        message_id = make_message(app, clinic, patient, deliver=False)  # the worker sends it
        other_id = make_message(app, other, make_patient(app, other), deliver=False)

        wait_until(lambda: [b["status"] for b in ours.taken()] == ["pending", "sent"])
        wait_until(lambda: [b["status"] for b in theirs.taken()] == ["pending", "sent"])
        first = ours.received[0]
        assert verify(secret, first.headers["Relais-Signature"], first.body)
        assert not verify("whsec_wrong", first.headers["Relais-Signature"], first.body)
        assert not verify(secret, first.headers["Relais-Signature"], first.body + b" ")
        body = first.json
        assert body["message_id"] == str(message_id)
        assert body["purpose"] == "transactional" and body["channel"] == "sms"
        assert "Bonjour" not in first.body.decode()  # never the text
        assert {b["message_id"] for b in ours.taken()} == {str(message_id)}
        assert {b["message_id"] for b in theirs.taken()} == {str(other_id)}
        # A signature five minutes old no longer verifies (a replayed request).
        with time_machine.travel(utcnow() + timedelta(minutes=6)):
            assert not verify(secret, first.headers["Relais-Signature"], first.body)

        log = browser.get("/settings/callbacks/log")
        assert log.status_code == 200
        assert str(message_id) in log.text and "200" in log.text
        assert str(other_id) not in log.text


def test_an_endpoint_answering_500_twice_gets_three_attempts_and_events_stay_in_order(app, worker):
    allow_loopback(app)
    with CallbackReceiver() as receiver:
        clinic, browser = clinic_admin(app, "demo")
        register(browser, receiver.url)
        receiver.answer_next(500, 500)
        message_id = make_message(app, clinic, make_patient(app, clinic), deliver=False)

        wait_until(lambda: len(receiver.taken()) == 2)
        answered = [(c.json["status"], c.answered) for c in receiver.received]
        assert answered == [("pending", 500), ("pending", 500), ("pending", 200), ("sent", 200)]
        # The same event each time, signed anew.
        assert len({c.headers["Relais-Event-Id"] for c in receiver.received[:3]}) == 1

        def codes():
            with app.app_context(), tenant_scope(clinic.id):
                return db.session.scalars(sa.select(Attempt.status_code).order_by(Attempt.at)).all()

        assert wait_until(lambda: len(codes()) == 4 and codes()) == [500, 500, 200, 200]
        assert len(receiver.received) == 4  # nothing sent twice
        assert {c.json["message_id"] for c in receiver.received} == {str(message_id)}


def test_a_failing_event_holds_back_the_next_of_its_message(app):
    allow_loopback(app)
    with CallbackReceiver() as receiver:
        clinic, browser = clinic_admin(app, "demo")
        register(browser, receiver.url)
        receiver.answer_next(503)
        make_message(app, clinic, make_patient(app, clinic))  # pending, then sent, at once
        deliver_now(app, clinic)
        assert [(c.json["status"], c.answered) for c in receiver.received] == [("pending", 503)]
        deliver_now(app, clinic)  # retried: then the next one may go
        assert [b["status"] for b in receiver.taken()] == ["pending", "sent"]
        deliver_now(app, clinic)
        assert len(receiver.received) == 3  # nothing twice


def test_two_workers_given_the_same_events_send_each_once(app):
    allow_loopback(app)
    with CallbackReceiver(delay=0.5) as receiver:  # slow: both jobs run during the POST
        clinic, browser = clinic_admin(app, "demo")
        register(browser, receiver.url)
        make_message(app, clinic, make_patient(app, clinic))
        jobs = [threading.Thread(target=deliver_now, args=(app, clinic)) for _ in range(2)]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()
        deliver_now(app, clinic)  # whatever one job skipped, locked by the other
        assert [b["status"] for b in receiver.taken()] == ["pending", "sent"]
        assert len(receiver.received) == 2


def test_a_reply_is_told_without_its_text(app):
    allow_loopback(app)
    with CallbackReceiver() as receiver:
        clinic, browser = clinic_admin(app, "demo")
        register(browser, receiver.url)
        patient = make_patient(app, clinic)
        with app.app_context(), tenant_scope(clinic.id):
            reply_id = receipts.keep_inbound(
                clinic,
                patient.id,
                "outbox",
                "sms",
                Inbound(
                    sender=patient.phone, recipient="+33939030101", text="Mal au dos", at=utcnow()
                ),
            ).id
            db.session.commit()
        deliver_now(app, clinic)
        (body,) = receiver.taken()
        assert body["type"] == "reply.received"
        assert body["reply_id"] == str(reply_id) and body["patient_id"] == str(patient.id)
        assert "Mal au dos" not in receiver.received[0].body.decode()


def test_retries_wait_longer_each_time_and_end_after_24_hours():
    assert [delivery.backoff(n, 30).total_seconds() for n in (1, 2, 3, 8, 20)] == [
        30,
        60,
        120,
        3600,
        3600,
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",  # a name resolving to loopback
        "https://224.0.0.1/hook",
        "http://93.184.215.14/hook",  # a public address, but not https
    ],
)
def test_private_addresses_are_refused_without_the_deployment_setting(app, url):
    clinic, browser = clinic_admin(app, "demo")
    page = register(browser, url)
    assert page.status_code == 422
    assert 'id="e-url"' in page.text
    assert endpoints(app, clinic) == []


def test_the_address_is_checked_again_at_each_send(app):
    """The operator's allowance gone, the loopback endpoint gets nothing more."""
    allow_loopback(app)
    with CallbackReceiver() as receiver:
        clinic, browser = clinic_admin(app, "demo")
        register(browser, receiver.url)
        allow_loopback(app, allow="no")
        make_message(app, clinic, make_patient(app, clinic))
        deliver_now(app, clinic)
        assert receiver.received == []
        log = browser.get("/settings/callbacks/log")
        assert "Non envoyé" in log.text  # the clinic reads French


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("not a url", 'id="e-url"'),  # the form's field, with its message
        ("https://" + "a" * 600 + ".example/", 'id="e-url"'),
        ("https://example.org/\x00", "Le champ url"),  # refused before any view, naming it
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(app, url, named):
    allow_loopback(app)
    with CallbackReceiver() as receiver:
        clinic, browser = clinic_admin(app, "demo")
        register(browser, receiver.url)
        page = register(browser, url)
        assert page.status_code == 422
        assert named in page.text
        assert endpoints(app, clinic) == [receiver.url]


def test_a_new_secret_signs_beside_the_previous_one_for_a_day(app):
    allow_loopback(app)
    verify = documented_verify()
    with CallbackReceiver() as receiver:
        clinic, browser = clinic_admin(app, "demo")
        old = secret_of(register(browser, receiver.url))
        rotated = browser.post(
            "/settings/callbacks/rotate", data={"csrf_token": csrf_token(browser, PAGE)}
        )
        new = secret_of(rotated)
        assert new != old
        make_message(app, clinic, make_patient(app, clinic))
        deliver_now(app, clinic)
        call = receiver.received[0]
        assert verify(new, call.headers["Relais-Signature"], call.body)
        assert verify(old, call.headers["Relais-Signature"], call.body)


def test_only_admins_see_the_pages(app):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    browser = client_for(app, "demo")
    log_in(browser, make_staff(app, clinic, "secretary"))
    assert browser.get(PAGE).status_code == 403
    assert browser.get("/settings/callbacks/log").status_code == 403
