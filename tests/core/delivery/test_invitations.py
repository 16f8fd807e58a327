"""A clinic's first admin, invited by the operator: the e-mail leaves through the pipeline
(outbox page, or a real SMTP relay), its link sets a password once, then the admin logs in
as every new staff member does. Expired, used, replaced and forged links are refused with a
page that says which; the link never shows in logs nor on staff pages."""

import html
import logging
import re
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
import time_machine
from flask_babel import force_locale, gettext

from core.app import create_app
from core.clinic.models import AuditEvent, User
from core.clinic.settings import save
from core.db import db, utcnow
from core.delivery import dispatch, invitations
from core.delivery.models import Message
from core.delivery.sweeper import deliver_due_in_process
from core.web.cli import main
from plugins.channels.outbox.plugin import OutboxDelivery
from tenants.models import ProviderRoute, Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.core.test_cli import environment, run_relais
from tests.plugins.channels.smtp_server import SmtpServer
from tests.tenants.test_console import make_operator, post, tenant_slugs
from tests.worlds import (
    SERVER,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_staff,
    wait_until,
)

LINK = re.compile(rf"https?://rive\.{re.escape(SERVER)}(/invitation/[A-Za-z0-9_.\-]+)")
NEW_PASSWORD = "a long and new passphrase"


@pytest.fixture
def clinic(app):
    return make_clinic(app, "rive", "FR", plugins=("fr", "outbox"))


@pytest.fixture
def console(app):
    client = client_for(app, "operator")
    log_in(client, make_operator(app))
    return client


def french(app, message: str, **variables) -> str:
    """What a French clinic's page says (its pages are in its country's language)."""
    with app.test_request_context(), force_locale("fr"):
        return gettext(message, **variables)


def text_of(page) -> str:
    return html.unescape(page.text)


def invite(console, name="Claire Martin", email="claire@rive.example"):
    page = post(console, "/clinics/rive/invitation", name=name, email=email)
    assert page.status_code == 302, page.text
    return page


def invitation_messages(app, clinic) -> list[Message]:
    with app.app_context(), tenant_scope(clinic.id):
        return list(db.session.scalars(sa.select(Message).order_by(Message.created_at)))


def deliver_all(app, clinic) -> None:
    """Run the worker's job function on the clinic's messages."""
    with app.app_context(), tenant_scope(clinic.id):
        ids = [str(m.id) for m in db.session.scalars(sa.select(Message))]
        dispatch.deliver(ids)


def outbox_link(app, clinic) -> str:
    """The link of the newest invitation e-mail on the outbox page's table."""
    with app.app_context(), tenant_scope(clinic.id):
        mail = db.session.scalars(
            sa.select(OutboxDelivery).order_by(OutboxDelivery.at.desc())
        ).first()
    assert mail.channel == "email" and mail.recipient == "claire@rive.example"
    return LINK.search(mail.text).group(1)


def set_password(client, path: str, password=NEW_PASSWORD, confirmation=None):
    return client.post(
        path,
        data={
            "password": password,
            "confirmation": password if confirmation is None else confirmation,
            "csrf_token": csrf_token(client, path),
        },
    )


def log_in_first_time(app, client, email: str, password: str) -> None:
    """Password, then the authenticator app's enrolment, as a new staff member does."""
    page = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client, "/login")},
    )
    assert page.status_code == 302 and page.location.endswith("/login/enrol"), page.text
    with app.app_context(), system_scope():
        secret = db.session.scalar(sa.select(User.totp_secret).where(User.email == email))
    page = client.post(
        "/login/enrol",
        data={
            "code": pyotp.TOTP(secret).now(),
            "csrf_token": csrf_token(client, "/login/enrol"),
        },
    )
    assert page.status_code == 302, page.text


# --- the whole way ----------------------------------------------------------------------------


def test_invited_admin_sets_a_password_through_the_outbox_and_logs_in(app, clinic, console, worker):
    invite(console)
    listing = text_of(console.get("/"))
    assert "Claire Martin" in listing

    # A real worker carries the e-mail to the outbox page's table, in the clinic's language.
    wait_until(lambda: outbox_link_or_none(app, clinic))
    path = outbox_link(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        mail = db.session.scalars(sa.select(OutboxDelivery)).one()
    assert mail.subject == french(
        app, "Your administrator account at %(clinic)s", clinic="Clinic rive"
    )

    visitor = client_for(app, "rive")
    form = visitor.get(path)
    assert form.status_code == 200
    assert "Claire Martin" in text_of(form) and "claire@rive.example" in form.text

    # The password rules of every account apply; both fields must match.
    short = set_password(visitor, path, "too short")
    assert short.status_code == 422
    assert 'id="e-password"' in short.text
    differ = set_password(visitor, path, NEW_PASSWORD, "another long passphrase")
    assert differ.status_code == 422
    assert french(app, "The two passwords are not the same.") in text_of(differ)

    done = set_password(visitor, path)
    assert done.status_code == 302 and done.location.endswith("/login")

    log_in_first_time(app, visitor, "claire@rive.example", NEW_PASSWORD)
    staff_page = visitor.get("/staff")  # admins only
    assert staff_page.status_code == 200
    assert "Claire Martin" in text_of(staff_page)

    # The link is used: it opens nothing again.
    again = client_for(app, "rive").get(path)
    assert again.status_code == 404
    assert french(
        app, "This invitation was already used: log in with your e-mail address and password."
    ) in text_of(again)

    assert "Claire Martin: accepted" in text_of(console.get("/"))  # the console is English here
    with app.app_context(), tenant_scope(clinic.id):
        events = {e.action: e for e in db.session.scalars(sa.select(AuditEvent))}
    assert events["user.invite"].actor == "operator"
    assert events["user.invite"].detail == "claire@rive.example"
    admin_id = events["user.accept_invitation"].object_id
    assert events["user.accept_invitation"].actor == f"user:{admin_id}"


def outbox_link_or_none(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalar(sa.select(OutboxDelivery.id))


def test_the_invitation_arrives_by_smtp_when_the_cli_sends_it(app, runner):
    clinic = make_clinic(app, "rive", "FR", plugins=("fr", "smtp_email"))
    with SmtpServer() as relay:
        with app.app_context(), system_scope():
            save("FR", "smtp_email", relay.settings())
            db.session.add(ProviderRoute(country_code="FR", channel="email", provider="smtp_email"))
            db.session.commit()
        result = runner.invoke(
            main,
            ["users", "invite", "claire@rive.example", "--name", "Claire", "--tenant", "rive"],
        )
        assert result.exit_code == 0, result.output
        assert "claire@rive.example" in result.output
        assert "/invitation/" not in result.output  # the link goes to its holder only
        deliver_all(app, clinic)
        (mail,) = relay.messages

    assert mail["To"] == "claire@rive.example"
    path = LINK.search(mail.get_body(("plain",)).get_content()).group(1)
    visitor = client_for(app, "rive")
    assert set_password(visitor, path).status_code == 302
    log_in_first_time(app, visitor, "claire@rive.example", NEW_PASSWORD)
    assert visitor.get("/staff").status_code == 200


# --- refused links ----------------------------------------------------------------------------


def test_an_expired_link_is_refused_with_a_page_saying_so(app, clinic, console):
    invite(console)
    deliver_all(app, clinic)
    path = outbox_link(app, clinic)

    with time_machine.travel(utcnow() + timedelta(hours=72, minutes=1)):
        page = client_for(app, "rive").get(path)
    assert page.status_code == 404
    assert french(
        app, "This invitation has expired. Ask your Relais operator to send a new one."
    ) in text_of(page)
    with time_machine.travel(utcnow() + timedelta(hours=71)):
        assert client_for(app, "rive").get(path).status_code == 200  # still valid before


def test_forged_and_other_clinics_links_are_refused(app, clinic, console):
    make_clinic(app, "other", "FR", plugins=("fr", "outbox"))
    invite(console)
    deliver_all(app, clinic)
    path = outbox_link(app, clinic)
    invalid = french(app, "This link is not valid. Check that you copied all of it.")

    forged = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    for client, where in ((client_for(app, "rive"), forged), (client_for(app, "other"), path)):
        page = client.get(where)
        assert page.status_code == 404
        assert invalid in text_of(page)
        assert 'name="password"' not in page.text
    visitor = client_for(app, "rive")
    refused = visitor.post(
        forged,
        data={
            "password": NEW_PASSWORD,
            "confirmation": NEW_PASSWORD,
            "csrf_token": csrf_token(visitor, "/login"),
        },
    )
    assert refused.status_code == 404
    with app.app_context(), system_scope():
        assert db.session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_inviting_again_replaces_the_earlier_link(app, clinic, console):
    invite(console, email="claire@typo.example")
    deliver_all(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        first = LINK.search(db.session.scalars(sa.select(OutboxDelivery)).one().text).group(1)
    invite(console)
    deliver_all(app, clinic)
    second = outbox_link(app, clinic)

    old = client_for(app, "rive").get(first)
    assert old.status_code == 404
    assert french(
        app, "This invitation was replaced by a newer one: use the link of the latest e-mail."
    ) in text_of(old)
    visitor = client_for(app, "rive")
    assert set_password(visitor, second).status_code == 302
    with app.app_context(), system_scope():
        assert db.session.scalars(sa.select(User.email)).all() == ["claire@rive.example"]


# --- secrecy ----------------------------------------------------------------------------------


def test_the_link_never_shows_in_logs_nor_on_staff_pages(app, clinic, console, caplog):
    caplog.set_level(logging.DEBUG)
    invite(console)
    deliver_all(app, clinic)
    path = outbox_link(app, clinic)
    token = path.rsplit("/", 1)[1]
    visitor = client_for(app, "rive")
    set_password(visitor, path)

    admin = make_staff(app, clinic, "admin", email="boss@rive.example")
    staff = client_for(app, "rive")
    log_in(staff, admin)
    (message,) = invitation_messages(app, clinic)
    page = staff.get(f"/messages/{message.id}")
    assert page.status_code == 200
    assert token not in page.text and "/invitation/" not in page.text
    assert french(
        app,
        "Hidden: this message holds a secret for the patient alone (an access link or a code).",
    ) in text_of(page)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in logged


def test_in_the_sqlite_demo_the_invitation_lands_on_the_outbox_page(tmp_path):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    demo = run_relais("demo", "--no-serve", env=environment(DATABASE_URL=url), cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    demo_app = create_app({"DATABASE_URL": url, "TESTING": True})
    demo_app.test_client_class = HostClient
    try:
        with demo_app.test_request_context(), system_scope():
            tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == "demo"))
            invitations.invite(tenant, "nouvelle@demo.example", "Nora Nouvelle")
            invitations.invite(tenant, "nouvelle@demo.example", "Nora Nouvelle")  # again
            db.session.commit()
        with demo_app.app_context():
            deliver_due_in_process()
        with demo_app.app_context(), tenant_scope(tenant.id):
            mails = db.session.scalars(
                sa.select(OutboxDelivery)
                .where(OutboxDelivery.recipient == "nouvelle@demo.example")
                .order_by(OutboxDelivery.at)
            ).all()
        assert len(mails) == 2  # the demo admin reads both on the Outbox page
        path = re.search(r"http://demo\.localhost:5000(/invitation/\S+)", mails[-1].text).group(1)
        visitor = demo_app.test_client()
        visitor.base_url = "https://demo.localhost:5000"
        assert set_password(visitor, path).status_code == 302
    finally:
        with demo_app.app_context():
            db.engine.dispose()


# --- the operator's forms ---------------------------------------------------------------------


def test_bad_or_taken_addresses_are_named_next_to_their_field(app, clinic, console):
    page = post(console, "/clinics/rive/invitation", name="Claire", email="not an address")
    assert page.status_code == 422
    assert 'id="e-email"' in page.text
    make_staff(app, clinic, "secretary", email="taken@rive.example")
    page = post(console, "/clinics/rive/invitation", name="Claire", email="taken@rive.example")
    assert page.status_code == 409
    assert 'id="e-email"' in page.text
    assert invitation_messages(app, clinic) == []
    assert console.get("/clinics/nowhere/invitation").status_code == 404


def test_a_new_clinic_can_invite_its_first_admin_at_once(app, console):
    make_clinic(app, "seed", "FR", plugins=("fr", "outbox"))  # France's plugins, enabled
    bad = post(
        console, "/", name="Rive", subdomain="rive", country="FR", admin_name="C", admin_email="x"
    )
    assert bad.status_code == 422
    assert 'id="e-admin_email"' in bad.text
    assert tenant_slugs(app) == ["seed"]  # nothing created

    made = post(
        console,
        "/",
        name="Rive",
        subdomain="rive",
        country="FR",
        admin_name="Claire Martin",
        admin_email="claire@rive.example",
    )
    assert made.status_code == 302
    with app.app_context(), system_scope():
        message = db.session.scalars(sa.select(Message)).one()
    assert message.address == "claire@rive.example" and message.channels == ["email"]
