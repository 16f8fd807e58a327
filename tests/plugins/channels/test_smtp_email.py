"""SMTP e-mail: messages leave through a real SMTP relay (aiosmtpd on loopback).

Through the pipeline (outbox.send, then the worker's job function): text and HTML parts,
headers and our Message-ID; a 4xx is retried later; an unknown address falls back to the next
channel; bad credentials fail over; a batch shares a connection and nothing arrives twice.
"""

import math
import uuid

import pytest
import sqlalchemy as sa

from core.clinic.models import Patient
from core.clinic.patients import create_patient
from core.clinic.settings import save, schema, stored
from core.db import db, utcnow
from core.delivery import dispatch, outbox
from core.delivery.models import Attempt, Message, MessageStatus
from core.delivery.providers import Outgoing, send_batch
from core.errors import ValidationError
from core.testing import ChannelContract, ContractSetup, FailureMapping
from plugins.channels.outbox.plugin import OutboxDelivery
from plugins.channels.smtp_email.plugin import SmtpEmail
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.plugins.channels.smtp_server import (
    PASSWORD,
    SENDER,
    SmtpServer,
    free_port,
    self_signed_certificate,
)
from tests.worlds import make_clinic, make_patient

TEMPLATE = {
    "subject": "Votre rendez-vous du {{ day }}",
    "text": "Bonjour {{ name }}, rendez-vous le {{ day }}.",
    "html": "<p>Bonjour <b>{{ name }}</b>, rendez-vous le {{ day }}.</p>",
}
DOMAIN = "clinique.example"


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("smtp_email", "fr", "outbox"))


def configure(app, form, email_routes=("smtp_email",)):
    """The operator sets the plugin up for France and routes e-mail through it."""
    with app.app_context(), system_scope():
        save("FR", "smtp_email", form)
        for priority, provider in enumerate(email_routes, start=1):
            db.session.add(
                ProviderRoute(
                    country_code="FR", channel="email", provider=provider, priority=priority
                )
            )
        db.session.commit()


def send(app, tenant, patient, channels=("email", "sms")):
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        message = outbox.send(
            tenant,
            who,
            "reminder",
            TEMPLATE,
            {"name": who.first_name, "day": "3 mars"},
            list(channels),
        )
        db.session.commit()
        return message.id


def run_job(app, tenant, *message_ids):
    with app.app_context(), tenant_scope(tenant.id):
        return dispatch.deliver([str(i) for i in message_ids])


def state(app, tenant, message_id):
    with app.app_context(), tenant_scope(tenant.id):
        message = db.session.get(Message, (tenant.id, message_id))
        db.session.expunge(message)
        return message


def attempts(app, tenant):
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(
            sa.select(Attempt.provider, Attempt.outcome, Attempt.error).order_by(Attempt.at)
        ).all()


def outbox_deliveries(app, tenant):
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(sa.select(OutboxDelivery.channel, OutboxDelivery.recipient)).all()


def time_passes(app, tenant, message_id):
    with app.app_context(), tenant_scope(tenant.id):
        db.session.get(Message, (tenant.id, message_id)).next_attempt_at = utcnow()
        db.session.commit()


def jeanne(app, clinic, email="jeanne@example.org"):
    return make_patient(app, clinic, first_name="Jeanne", email=email)


# --- through the pipeline ---------------------------------------------------------------------


def test_an_email_arrives_with_text_html_and_our_message_id(app, clinic, smtp_server):
    configure(app, smtp_server.settings())
    message_id = send(app, clinic, jeanne(app, clinic))
    run_job(app, clinic, message_id)

    [received] = smtp_server.received
    mail = received.message
    assert received.mail_from == "rendez-vous@clinique.example"
    assert received.rcpt_tos == ["jeanne@example.org"]
    assert mail["From"] == SENDER and mail["To"] == "jeanne@example.org"
    assert mail["Subject"] == "Votre rendez-vous du 3 mars"
    assert mail["Message-ID"] == f"<{message_id}@{DOMAIN}>"
    assert mail["Date"] is not None
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.strip() == "Bonjour Jeanne, rendez-vous le 3 mars."
    assert "<b>Jeanne</b>" in html
    message = state(app, clinic, message_id)
    assert (message.status, message.provider) == (MessageStatus.SENT, "smtp_email")
    assert message.provider_ref == f"<{message_id}@{DOMAIN}>"
    assert smtp_server.connections == 1


def test_a_451_is_retried_later_then_sent_once(app, clinic, smtp_server):
    configure(app, smtp_server.settings())
    smtp_server.refuse("jeanne@example.org", "451 4.3.0 Mailbox busy, try later", times=1)
    message_id = send(app, clinic, jeanne(app, clinic))

    run_job(app, clinic, message_id)
    message = state(app, clinic, message_id)
    assert message.status == MessageStatus.PENDING and message.next_attempt_at > utcnow()
    assert smtp_server.received == []

    run_job(app, clinic, message_id)  # not due yet: nothing happens
    assert smtp_server.received == []
    time_passes(app, clinic, message_id)
    run_job(app, clinic, message_id)

    assert state(app, clinic, message_id).status == MessageStatus.SENT
    assert len(smtp_server.received) == 1
    assert [(p, o) for p, o, _ in attempts(app, clinic)] == [
        ("smtp_email", "temporary"),
        ("smtp_email", "accepted"),
    ]
    assert "451" in attempts(app, clinic)[0].error


def test_an_unknown_address_falls_back_to_sms(app, clinic, smtp_server):
    configure(app, smtp_server.settings())
    smtp_server.refuse("jeanne@example.org", "550 5.1.1 No such user here")
    message_id = send(app, clinic, jeanne(app, clinic))
    run_job(app, clinic, message_id)

    message = state(app, clinic, message_id)
    assert (message.status, message.channel) == (MessageStatus.SENT, "sms")
    assert message.provider == "outbox_sms"
    assert outbox_deliveries(app, clinic) == [("sms", "+33612345678")]
    assert smtp_server.received == []
    outcomes = attempts(app, clinic)
    assert [(p, o) for p, o, _ in outcomes] == [
        ("smtp_email", "unreachable"),
        ("outbox_sms", "accepted"),
    ]
    assert outcomes[0].error.startswith("550 5.1.1")


def test_one_unknown_address_does_not_stop_the_rest_of_the_batch(app, clinic, smtp_server):
    configure(app, smtp_server.settings())
    smtp_server.refuse("nobody@example.org", "553 5.1.3 Bad recipient address syntax")
    ids = [
        send(app, clinic, jeanne(app, clinic, email))
        for email in ("a@example.org", "nobody@example.org", "b@example.org")
    ]
    run_job(app, clinic, *ids)

    assert [m["To"] for m in smtp_server.messages] == ["a@example.org", "b@example.org"]
    assert [state(app, clinic, i).channel for i in ids] == ["email", "sms", "email"]
    assert smtp_server.connections == 1


def test_bad_credentials_fail_over_to_the_next_email_provider(app, clinic, smtp_server):
    configure(app, smtp_server.settings(password="wrong"), ("smtp_email", "outbox_email"))
    message_id = send(app, clinic, jeanne(app, clinic))
    run_job(app, clinic, message_id)

    message = state(app, clinic, message_id)
    assert (message.status, message.channel) == (MessageStatus.SENT, "email")
    assert message.provider == "outbox_email"
    outcomes = attempts(app, clinic)
    assert [(p, o) for p, o, _ in outcomes] == [
        ("smtp_email", "permanent"),
        ("outbox_email", "accepted"),
    ]
    assert outcomes[0].error.startswith("535")
    assert smtp_server.received == []


def test_bad_credentials_fall_back_to_sms_when_no_other_email_provider(app, clinic, smtp_server):
    configure(app, smtp_server.settings(password="wrong"))
    message_id = send(app, clinic, jeanne(app, clinic))
    run_job(app, clinic, message_id)
    assert state(app, clinic, message_id).provider == "outbox_sms"
    assert outbox_deliveries(app, clinic) == [("sms", "+33612345678")]


def test_a_batch_of_120_shares_few_connections_and_each_arrives_once(app, clinic, smtp_server):
    configure(app, smtp_server.settings())
    with app.app_context(), tenant_scope(clinic.id):
        patients = [
            create_patient(
                clinic, {"first_name": f"P{n}", "last_name": "Test", "email": f"p{n}@example.org"}
            )
            for n in range(120)
        ]
        ids = [
            outbox.send(
                clinic, p, "transactional", TEMPLATE, {"name": p.first_name, "day": "1"}, ["email"]
            ).id
            for p in patients
        ]
        db.session.commit()

    assert run_job(app, clinic, *ids) == 120
    assert run_job(app, clinic, *ids) == 0  # the same job pushed twice sends nothing more

    assert smtp_server.connections == math.ceil(120 / SmtpEmail.batch_size) == 3
    message_ids = [m["Message-ID"] for m in smtp_server.messages]
    assert len(message_ids) == 120
    assert sorted(message_ids) == sorted(f"<{i}@{DOMAIN}>" for i in ids)  # none twice
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(
        f"p{n}@example.org" for n in range(120)
    )
    with app.app_context(), tenant_scope(clinic.id):
        statuses = db.session.scalars(sa.select(Message.status).where(Message.id.in_(ids)))
        assert set(statuses) == {MessageStatus.SENT}


# --- the provider on its own (what the pipeline does not carry yet) ---------------------------


def outgoing(to="jeanne@example.org", **fields) -> Outgoing:
    return Outgoing(
        message_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel="email",
        to=to,
        text=fields.pop("text", "Bonjour"),
        subject=fields.pop("subject", "Rendez-vous"),
        **fields,
    )


def provider(app, form) -> SmtpEmail:
    """The provider as the core builds it: the parsed settings of the operator's form."""
    with app.app_context(), system_scope():
        save("FR", "smtp_email", form)
        values = stored("FR", "smtp_email")
        db.session.rollback()
    return SmtpEmail(settings={"security": "starttls", **values})


ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Relais//FR\r\nMETHOD:REQUEST\r\n"
    b"BEGIN:VEVENT\r\nUID:rdv-1@clinique.example\r\nDTSTART:20250303T090000Z\r\n"
    b"SUMMARY:Rendez-vous\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_attachments_arrive_intact(app, smtp_server):
    binary = bytes(range(256)) * 40
    message = outgoing(
        html="<p>Bonjour</p>",
        attachments=(
            ("rendez-vous.ics", "text/calendar", ICS),
            ("scan.pdf", "application/pdf", binary),
        ),
    )
    [result], _latency = send_batch(provider(app, smtp_server.settings()), [message], 5.0)

    assert result.outcome == "accepted"
    [mail] = smtp_server.messages
    assert mail.get_content_type() == "multipart/mixed"
    assert mail.get_body(("html",)).get_content().strip() == "<p>Bonjour</p>"
    ics, pdf = list(mail.iter_attachments())
    assert (ics.get_filename(), ics.get_content_type()) == ("rendez-vous.ics", "text/calendar")
    assert ics.get_param("method") == "REQUEST"
    assert ics.get_payload(decode=True) == ICS
    assert (pdf.get_filename(), pdf.get_content_type()) == ("scan.pdf", "application/pdf")
    assert pdf.get_payload(decode=True) == binary


def test_an_invitation_goes_through_the_pipeline_attached(app, clinic, smtp_server):
    configure(app, smtp_server.settings())
    patient = jeanne(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        message_id = outbox.send(
            clinic,
            who,
            "reminder",
            TEMPLATE,
            {"name": "Jeanne", "day": "3 mars"},
            ["email"],
            attachments=[("rendez-vous.ics", "text/calendar", ICS)],
        ).id
        db.session.commit()
    run_job(app, clinic, message_id)
    [mail] = smtp_server.messages
    [ics] = list(mail.iter_attachments())
    assert ics.get_filename() == "rendez-vous.ics" and ics.get_payload(decode=True) == ICS


def test_a_malformed_attachment_is_refused_before_sending(app, smtp_server):
    message = outgoing(attachments=(("notes.txt", b"no mime type"),))
    [result], _ = send_batch(provider(app, smtp_server.settings()), [message], 5.0)
    assert result.outcome == "permanent" and "triple" in result.error
    assert smtp_server.received == []


def test_the_same_message_sent_twice_is_recognisable(app, smtp_server):
    message = outgoing()
    smtp = provider(app, smtp_server.settings())
    send_batch(smtp, [message], 5.0)
    send_batch(smtp, [message], 5.0)  # e.g. a worker died before recording the first
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert ids == [f"<{message.message_id}@{DOMAIN}>"] * 2


def test_a_relay_closing_the_connection_is_reconnected_within_the_batch(app, smtp_server):
    smtp_server.close_after = 2  # then 421 to the next MAIL FROM
    batch = [outgoing(f"p{n}@example.org") for n in range(5)]
    results, _ = send_batch(provider(app, smtp_server.settings()), batch, 5.0)
    assert [r.outcome for r in results] == ["accepted"] * 2 + ["temporary"] + ["accepted"] * 2
    assert results[2].error.startswith("421")
    assert smtp_server.connections == 2
    assert [m["To"] for m in smtp_server.messages] == [
        "p0@example.org",
        "p1@example.org",
        "p3@example.org",
        "p4@example.org",
    ]


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        ("450 4.2.1 Mailbox busy", "temporary"),
        ("550 5.1.1 User unknown", "unreachable"),
        ("551 User not local", "unreachable"),
        ("553 Mailbox name not allowed", "unreachable"),
        ("550 5.2.1 Mailbox disabled", "unreachable"),
        ("550 5.7.1 Relaying denied", "permanent"),
        ("554 Transaction failed", "permanent"),
    ],
)
def test_recipient_refusals_are_mapped(app, smtp_server, reply, outcome):
    smtp_server.refuse("jeanne@example.org", reply)
    [result], _ = send_batch(provider(app, smtp_server.settings()), [outgoing()], 5.0)
    assert result.outcome == outcome and result.error == reply


def test_no_server_is_temporary(app):
    form = {"host": "127.0.0.1", "port": str(free_port()), "security": "none", "sender": SENDER}
    [result], _ = send_batch(provider(app, form), [outgoing()], 5.0)
    assert result.outcome == "temporary" and "ConnectionRefusedError" in result.error


def test_a_silent_server_times_out_as_temporary(app):
    import socket

    with socket.socket() as silent:  # accepts connections, never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        form = {
            "host": "127.0.0.1",
            "port": str(silent.getsockname()[1]),
            "security": "none",
            "sender": SENDER,
        }
        [result], _ = send_batch(provider(app, form), [outgoing()], 0.2)
    assert result.outcome == "temporary" and "timed out" in result.error


def test_an_unconfigured_plugin_is_permanent(app):
    [result], _ = send_batch(SmtpEmail(settings={"security": "starttls"}), [outgoing()], 5.0)
    assert result.outcome == "permanent" and "not configured" in result.error


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1, trusted as the system's authorities would be."""
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login(app, certificate, security):
    with SmtpServer(security, certificate) as server:
        [result], _ = send_batch(provider(app, server.settings()), [outgoing()], 5.0)
        assert result.outcome == "accepted", result.error
        assert len(server.received) == 1 and server.connections == 1


def test_starttls_against_a_relay_without_it_is_permanent(app, smtp_server):
    form = smtp_server.settings(security="starttls")
    [result], _ = send_batch(provider(app, form), [outgoing()], 5.0)
    assert result.outcome == "permanent" and "STARTTLS" in result.error


def test_an_untrusted_certificate_is_permanent(app, tmp_path):
    with SmtpServer("ssl", self_signed_certificate(tmp_path)) as server:  # not in SSL_CERT_FILE
        [result], _ = send_batch(provider(app, server.settings()), [outgoing()], 5.0)
    assert result.outcome == "permanent" and "certificate" in result.error


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host", "smtp://mail.example.org"),
        ("port", "99999"),
        ("port", "submission"),
        ("security", "tls"),
        ("sender", "not an address"),
    ],
)
def test_settings_are_validated(app, field, value):
    form = {"host": "smtp.example.org", "sender": SENDER, field: value}
    with app.app_context(), system_scope(), pytest.raises(ValidationError) as caught:
        save("FR", "smtp_email", form)
    assert caught.value.field == field


def test_settings_are_normalised_and_the_password_kept(app):
    form = {
        "host": "SMTP.Example.org",
        "port": "465",
        "security": "SSL",
        "username": "relais",
        "password": PASSWORD,
        "sender": "Clinique Demo <Rendez-Vous@Clinique.Example>",
    }
    with app.app_context(), system_scope():
        save("FR", "smtp_email", form)
        values = save("FR", "smtp_email", {**form, "password": ""})  # left empty: kept
        db.session.rollback()
    assert values == {
        "host": "smtp.example.org",
        "port": 465,
        "security": "ssl",
        "username": "relais",
        "password": PASSWORD,
        "sender": "Clinique Demo <Rendez-Vous@clinique.example>",
    }


def test_the_default_security_is_starttls_on_587(app):
    with app.app_context():
        values = {s.name: s.default for s in schema("smtp_email")}
    assert values["security"] == "starttls" and values["port"] is None


# --- the channel contract -----------------------------------------------------------------------


class TestSmtpContract(ChannelContract, FailureMapping):
    """The relay's answers to RCPT TO play each failure; a stalled answer plays a timeout."""

    @pytest.fixture
    def contract(self, smtp_server):
        to = "jeanne@example.org"
        failures = {
            "temporary": lambda: smtp_server.refuse(to, "451 4.3.0 Try again later", times=1),
            "permanent": lambda: smtp_server.refuse(to, "554 5.7.1 Relaying denied", times=1),
            "unreachable": lambda: smtp_server.refuse(to, "550 5.1.1 No such user", times=1),
            "timeout": lambda: setattr(smtp_server, "stall", 3.0),
        }

        def received():  # our message ids, from the Message-ID of each e-mail taken
            return [m["Message-ID"].strip("<>").split("@")[0] for m in smtp_server.messages]

        return ContractSetup(
            provider=SmtpEmail(settings=smtp_server.settings()),
            to=to,
            fail=lambda kind: failures[kind](),
            received=received,
            timeout=1.0,
        )
