"""The weekly e-mail to a practitioner whose patients' requests wait: it reaches a real SMTP
relay (aiosmtpd) through a real worker when the 4th request waits, in the clinic's language,
with a count and a link but no name nor content; not again that week however often the job
runs; again a week later; never when the clinic turned it off."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from flask_babel import force_locale, ngettext

from core.clinic.settings import save, save_clinic
from core.db import db, utcnow
from core.delivery import dispatch
from core.delivery.models import Message
from core.web.cli import main
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.plugins.channels.smtp_server import SmtpServer
from tests.plugins.features.messaging_world import (
    make_doctor,
    make_patient_of,
    patient_browser,
    post,
)
from tests.worlds import make_clinic, wait_until

PLUGINS = ("fr", "messaging", "smtp_email")
SECRET = "Mon traitement contre la tension"


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


@pytest.fixture
def relay(app):
    with SmtpServer() as server:
        with app.app_context(), system_scope():
            save("FR", "smtp_email", server.settings())
            db.session.add(ProviderRoute(country_code="FR", channel="email", provider="smtp_email"))
            db.session.commit()
        yield server


@pytest.fixture
def doctor(app, clinic):
    return make_doctor(app, clinic, "dr.martin")


@pytest.fixture
def patient(app, clinic, doctor):
    return make_patient_of(app, clinic, [doctor])


def write(app, clinic, patient, doctor, times: int) -> None:
    me = patient_browser(app, clinic, patient)
    for n in range(times):
        sent = post(me, "/me/messages/", practitioner=str(doctor.id), body=f"{SECRET} ({n})")
        assert sent.status_code == 303, sent.text


def digests(app, clinic) -> list[Message]:
    """The e-mails of waiting requests in the outbox (to no patient: a staff address)."""
    with app.app_context(), tenant_scope(clinic.id):
        return list(
            db.session.scalars(
                sa.select(Message)
                .where(Message.patient_id.is_(None), Message.purpose == "transactional")
                .order_by(Message.created_at)
            )
        )


def subject(app, count: int) -> str:
    with app.test_request_context(), force_locale("fr"):
        return ngettext(
            "%(num)d patient request waits at %(clinic)s",
            "%(num)d patient requests wait at %(clinic)s",
            count,
            clinic="Clinic demo",
        )


def test_the_digest_arrives_once_a_week_without_names_or_content(
    app, clinic, doctor, patient, relay, worker, runner
):
    write(app, clinic, patient, doctor, 3)
    assert digests(app, clinic) == []  # 3 waiting: under the threshold

    write(app, clinic, patient, doctor, 1)
    (mail,) = wait_until(lambda: relay.messages)
    assert mail["To"] == "dr.martin@demo.example"
    assert mail["Subject"] == subject(app, 4)
    body = mail.get_body(("plain",)).get_content()
    assert "https://demo.relais.test/inbox/?show=unhandled" in body or (
        "http://demo.relais.test/inbox/?show=unhandled" in body
    )
    assert "Jeanne" not in body and "Durand" not in body and "tension" not in body

    # The job, twice, the same week: nothing more.
    for _ in range(2):
        result = runner.invoke(main, ["messaging", "digest"])
        assert result.exit_code == 0, result.output
        assert "0 e-mail(s)" in result.output
    write(app, clinic, patient, doctor, 1)  # a 5th request: still not this week
    assert len(digests(app, clinic)) == 1

    with time_machine.travel(utcnow() + timedelta(days=7, minutes=1), tick=False):
        result = runner.invoke(main, ["messaging", "digest"])
        assert "1 e-mail(s)" in result.output
        assert runner.invoke(main, ["messaging", "digest"]).output.startswith("0 e-mail(s)")
        later = digests(app, clinic)
        assert len(later) == 2 and later[1].address == "dr.martin@demo.example"
        # The worker lives in today's time: the job function carries it, a week later.
        with app.app_context(), tenant_scope(clinic.id):
            assert dispatch.deliver([str(later[1].id)]) == 1
    assert [m["Subject"] for m in relay.messages] == [subject(app, 4), subject(app, 5)]


def test_the_clinic_turns_it_off_or_lowers_the_threshold(app, clinic, doctor, patient, runner):
    with app.app_context(), tenant_scope(clinic.id):
        save_clinic(clinic, "messaging", {"digest": "no", "digest_threshold": "2"})
        db.session.commit()
    write(app, clinic, patient, doctor, 4)
    assert runner.invoke(main, ["messaging", "digest"]).exit_code == 0
    assert digests(app, clinic) == []

    with app.app_context(), tenant_scope(clinic.id):
        save_clinic(clinic, "messaging", {"digest": "yes", "digest_threshold": "2"})
        db.session.commit()
    assert "1 e-mail(s)" in runner.invoke(main, ["messaging", "digest"]).output
    assert len(digests(app, clinic)) == 1
