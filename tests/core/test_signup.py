"""Clinic self-onboarding: a practitioner signs a clinic up on the main domain, confirms their
e-mail by the invitation's link (caught by a real SMTP server), their phone by a code, enrols
their authenticator app and the clinic answers on its subdomain with its country's plugins.
Bad input changes nothing and names the field; abuse limits refuse clearly; the operator sees
the new clinics, suspends one (its subdomain answers 403, pages and API) and reactivates it."""

import html
import re
import threading
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
import time_machine

from core.clinic.models import AuditEvent, User
from core.clinic.settings import save
from core.db import db, utcnow
from core.delivery import dispatch, invitations
from core.delivery.models import Message
from core.delivery.sweeper import sweep
from core.web.cli import main
from tenants import provisioning
from tenants.models import Country, ProviderRoute, Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.plugins.channels.smtp_server import SmtpServer
from tests.tenants.test_console import make_operator, post, tenant_slugs
from tests.worlds import (
    SERVER,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
)

LINK = re.compile(rf"https?://rive\.{re.escape(SERVER)}(/invitation/[A-Za-z0-9_.\-]+)")
CODE = re.compile(r"\b(\d{6})\b")
PASSPHRASE = "a long and new passphrase"
FORM = {
    "clinic": "Cabinet de la Rive",
    "subdomain": "rive",
    "country": "FR",
    "name": "Claire Martin",
    "email": "claire@rive.example",
    "phone": "06 12 34 56 78",
}


def main_site(app) -> HostClient:
    """A browser on the bare domain, reading English."""
    client = app.test_client()
    client.base_url = f"https://{SERVER}"
    client.post("/language", data={"lang": "en", "csrf_token": csrf_token(client, "/signup")})
    return client


@pytest.fixture
def console(app):
    client = client_for(app, "operator")
    log_in(client, make_operator(app))
    return client


@pytest.fixture
def france_open(app, console):
    """The French operator's defaults (plugins, e-mail through SMTP) and sign-up open."""
    make_clinic(app, "existing", "FR", plugins=("fr", "outbox", "otp", "smtp_email"))
    opened = post(console, "/countries/FR/signup", allowed="1")
    assert opened.status_code == 302
    yield
    with app.app_context():  # countries outlive each test: close it again
        db.session.get(Country, "FR").self_signup = False
        db.session.commit()


def sign_up(client, **changes):
    return post(client, "/signup", **{**FORM, **changes})


def text_of(page) -> str:
    return html.unescape(page.text)


def tenant_id(app, slug: str):
    with app.app_context(), system_scope():
        return db.session.scalar(sa.select(Tenant.id).where(Tenant.slug == slug))


def messages(app, slug: str) -> list[Message]:
    with app.app_context(), tenant_scope(tenant_id(app, slug)):
        found = list(db.session.scalars(sa.select(Message).order_by(Message.created_at)))
        for message in found:
            db.session.expunge(message)
        return found


# --- the whole way ----------------------------------------------------------------------------


def test_a_practitioner_signs_up_and_the_clinic_runs_on_its_subdomain(app, console, france_open):
    visitor = main_site(app)
    page = visitor.get("/signup")
    assert page.status_code == 200 and "Sign your clinic up" in page.text
    assert "France" in page.text and "Germany" not in page.text  # only the countries opened
    free = visitor.get("/signup/subdomain?name=rive").json
    assert free == {"subdomain": "rive", "available": True, "message": None}

    with SmtpServer() as relay:
        with app.app_context(), system_scope():
            save("FR", "smtp_email", relay.settings())
            db.session.add(ProviderRoute(country_code="FR", channel="email", provider="smtp_email"))
            db.session.commit()
        done = sign_up(visitor)
        assert done.status_code == 302 and done.location.endswith("/signup/sent"), done.text
        sent = visitor.get("/signup/sent")
        assert "claire@rive.example" in sent.text
        with app.app_context(), tenant_scope(tenant_id(app, "rive")):
            dispatch.deliver([str(m.id) for m in messages(app, "rive")])
        (mail,) = relay.messages
    assert mail["To"] == "claire@rive.example"
    assert "Cabinet de la Rive" in mail["Subject"]
    path = LINK.search(mail.get_body(("plain",)).get_content()).group(1)

    # The link proves the address and sets the password.
    clinic = client_for(app, "rive")
    chosen = clinic.post(
        path,
        data={
            "password": PASSPHRASE,
            "confirmation": PASSPHRASE,
            "csrf_token": csrf_token(clinic, path),
        },
    )
    assert chosen.status_code == 302 and chosen.location.endswith("/login")

    # First login: the phone given at sign-up, proved by a code, then the authenticator app.
    step = post(clinic, "/login", email="claire@rive.example", password=PASSPHRASE)
    assert step.location.endswith("/login/phone"), step.text
    assert "+33612345678" in clinic.get("/login/phone").text
    asked = post(clinic, "/login/phone", phone="+33612345678")
    assert asked.location.endswith("/login/phone/code")
    code = CODE.search(messages(app, "rive")[-1].content["text"])[1]
    proved = post(clinic, "/login/phone/code", code=code)
    assert proved.location.endswith("/login/enrol")
    with app.app_context(), system_scope():
        secret = db.session.scalar(
            sa.select(User.totp_secret).where(User.email == "claire@rive.example")
        )
    enrolled = post(clinic, "/login/enrol", code=pyotp.TOTP(secret).now())
    assert enrolled.status_code == 302
    assert clinic.get("/").status_code == 200
    assert clinic.get("/staff").status_code == 200  # its administrator

    # The operator sees the new clinic, marked as signed up.
    listing = text_of(console.get("/"))
    assert "Cabinet de la Rive" in listing and "Signed up on" in listing
    assert "Claire Martin: accepted" in listing


def test_the_subdomain_check_says_why_a_name_cannot_be_taken(app, france_open):
    visitor = main_site(app)
    taken = visitor.get("/signup/subdomain?name=existing").json
    assert taken["available"] is False and taken["message"] == "This subdomain is taken."
    reserved = visitor.get("/signup/subdomain?name=Operator").json
    assert reserved["available"] is False and reserved["message"] == "This subdomain is reserved."
    bad = visitor.get("/signup/subdomain?name=no_underscores").json
    assert bad["available"] is False and "lowercase" in bad["message"]


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "status"),
    [
        ({"subdomain": "existing"}, "subdomain", 409),
        ({"subdomain": "operator"}, "subdomain", 422),
        ({"subdomain": "Rive Gauche!"}, "subdomain", 422),
        ({"clinic": ""}, "clinic", 422),
        ({"clinic": "C" * 201}, "clinic", 422),
        ({"name": "N" * 201}, "name", 422),
        ({"email": "not an address"}, "email", 422),
        ({"phone": "12"}, "phone", 422),
        ({"phone": "01 42 68 53 00"}, "phone", 422),  # a landline: no text message
        ({"phone": "0" * 41}, "phone", 422),
        ({"country": "DE"}, "country", 422),  # not opened by its operator
    ],
)
def test_bad_input_changes_nothing_and_names_the_field(app, france_open, changes, field, status):
    before = tenant_slugs(app)
    page = sign_up(main_site(app), **changes)
    assert page.status_code == status, page.text
    assert f'id="e-{field}"' in page.text
    assert tenant_slugs(app) == before


@pytest.mark.parametrize("field", ["clinic", "subdomain", "phone"])
def test_a_nul_character_is_refused_naming_the_field(app, france_open, field):
    page = sign_up(main_site(app), **{field: "ri\x00ve"})
    assert page.status_code == 422
    assert field in text_of(page)
    assert tenant_slugs(app) == ["existing"]


def test_a_closed_country_offers_no_sign_up(app):
    visitor = main_site(app)
    assert "Sign-up is not open yet" in visitor.get("/signup").text
    assert sign_up(visitor).status_code == 422
    assert tenant_slugs(app) == []


def test_sign_up_stays_closed_where_no_plugin_proves_phones(app, console):
    make_clinic(app, "existing", "DE", plugins=("de", "outbox"))  # no otp in Germany
    refused = post(console, "/countries/DE/signup", allowed="1")
    assert refused.status_code == 409
    assert "enable a plugin that proves phone numbers by a code" in text_of(refused)
    assert 'role="alert"' in refused.text
    with app.app_context():
        assert db.session.get(Country, "DE").self_signup is False
    assert "Sign-up is not open yet" in main_site(app).get("/signup").text


def test_a_sign_up_is_refused_once_the_codes_are_turned_off(app, console, france_open):
    with app.app_context(), system_scope():  # the operator disabled otp after opening
        provisioning.set_country_plugin("FR", "otp", False)
        db.session.commit()
    assert "no plugin enabled there proves a new clinic" in text_of(console.get("/"))
    visitor = main_site(app)
    assert "Sign-up is not open yet" in visitor.get("/signup").text
    refused = sign_up(visitor)
    assert refused.status_code == 422
    assert "phone numbers cannot be confirmed there" in text_of(refused)
    assert tenant_slugs(app) == ["existing"]


# --- sign-ups nobody took up ------------------------------------------------------------------


def test_an_expired_sign_up_is_removed_and_its_subdomain_free_again(app, france_open):
    visitor = main_site(app)
    assert sign_up(visitor).status_code == 302
    assert sign_up(visitor, subdomain="kept", email="kept@rive.example").status_code == 302
    make_patient(app, get_tenant(app, "kept"))  # someone works there: never removed
    with app.app_context(), system_scope():  # the operator's own clinic, never taken up
        invitations.invite(get_tenant(app, "existing"), "boss@existing.example", "Boss")
        db.session.commit()

    with time_machine.travel(utcnow() + timedelta(hours=71)), app.app_context():
        assert sweep()["released"] == 0  # the link still works
    with time_machine.travel(utcnow() + timedelta(hours=73)), app.app_context():
        assert sweep()["released"] == 1

    assert tenant_slugs(app) == ["existing", "kept"]
    with app.app_context(), system_scope():  # its e-mail and audit trail went with it
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Message)) == 2
    visitor.get("/signup")
    assert sign_up(visitor, email="new@rive.example").status_code == 302
    assert "rive" in tenant_slugs(app)


def test_the_cli_releases_expired_sign_ups_now(app, france_open, runner):
    assert sign_up(main_site(app)).status_code == 302
    assert "Nothing to release" in runner.invoke(main, ["tenants", "release-expired"]).output
    with time_machine.travel(utcnow() + timedelta(hours=73)):
        done = runner.invoke(main, ["tenants", "release-expired"])
    assert done.exit_code == 0 and "Released: rive." in done.output
    assert tenant_slugs(app) == ["existing"]


def get_tenant(app, slug: str) -> Tenant:
    with app.app_context(), system_scope():
        tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == slug))
        db.session.expunge(tenant)
        return tenant


# --- abuse limits -----------------------------------------------------------------------------


def test_pending_sign_ups_per_address_and_per_phone_are_limited(app, france_open):
    visitor = main_site(app)
    assert sign_up(visitor, subdomain="one").status_code == 302
    assert sign_up(visitor, subdomain="two", phone="06 11 11 11 11").status_code == 302
    third = sign_up(visitor, subdomain="three", phone="06 22 22 22 22")
    assert third.status_code == 429
    assert 'id="e-email"' in third.text and "this e-mail address" in text_of(third)
    other = sign_up(visitor, subdomain="four", email="other@rive.example")
    assert other.status_code == 302  # the phone has one pending sign-up
    again = sign_up(visitor, subdomain="five", email="third@rive.example")
    assert again.status_code == 429 and 'id="e-phone"' in again.text
    assert sorted(tenant_slugs(app)) == ["existing", "four", "one", "two"]


def test_sign_ups_from_one_address_are_rate_limited(app, france_open):
    visitor = main_site(app)
    token = csrf_token(visitor, "/signup")
    for _ in range(10):  # SIGNUP_RATE_LIMIT: 10 an hour, good or bad
        refused = visitor.post("/signup", data={**FORM, "phone": "12", "csrf_token": token})
        assert refused.status_code == 422
    blocked = visitor.post("/signup", data={**FORM, "csrf_token": token})
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.text
    assert tenant_slugs(app) == ["existing"]


# --- suspension -------------------------------------------------------------------------------


def test_a_suspended_clinic_answers_403_until_reactivated(app, console, france_open):
    clinic = client_for(app, "existing")
    assert clinic.get("/login").status_code == 200

    assert post(console, "/", **{}).status_code in (200, 422)  # the console works
    suspended = post(console, "/clinics/existing/suspension", suspend="1")
    assert suspended.status_code == 302
    page = clinic.get("/login")
    assert page.status_code == 403
    assert "This clinic is suspended" in text_of(page)
    api = clinic.get("/api/v1/patients", headers={"Authorization": "Bearer nope"})
    assert api.status_code == 403
    assert api.json["error"]["code"] == "forbidden"
    assert "suspended" in api.json["error"]["message"]
    listing = text_of(console.get("/"))
    assert "Suspended" in listing and "Reactivate" in listing

    assert post(console, "/clinics/existing/suspension", suspend="0").status_code == 302
    assert clinic.get("/login").status_code == 200
    with app.app_context(), system_scope():
        actions = list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.at)))
    assert actions == ["clinic.suspend", "clinic.reactivate"]


def test_suspension_needs_the_console_csrf_token(app, console, france_open):
    refused = console.post("/clinics/existing/suspension", data={"suspend": "1"})
    assert refused.status_code == 400
    assert client_for(app, "existing").get("/login").status_code == 200


def test_simultaneous_sign_ups_with_one_address_pass_the_limit_no_further(app, france_open):
    """Four forms at once with one e-mail address: two clinics, two refusals (the count
    happens under a lock, not before it)."""
    browsers = [main_site(app) for _ in range(4)]
    tokens = [csrf_token(b, "/signup") for b in browsers]
    start = threading.Barrier(len(browsers))
    answers = [None] * len(browsers)

    def send(i):
        start.wait()
        data = {
            **FORM,
            "subdomain": f"rive{i}",
            "phone": f"06 12 34 56 7{i}",
            "csrf_token": tokens[i],
        }
        answers[i] = browsers[i].post("/signup", data=data).status_code

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [302, 302, 429, 429]
    assert len(tenant_slugs(app)) == 3  # "existing" and two sign-ups


@pytest.mark.parametrize(
    ("language", "heading"),
    [
        ("fr", "Inscrivez votre cabinet"),
        ("de", "Registrieren Sie Ihre Praxis"),
        ("it", "Iscrivi il tuo studio"),
        ("nl", "Meld uw praktijk aan"),
    ],
)
def test_the_sign_up_page_speaks_the_readers_language(app, france_open, language, heading):
    visitor = app.test_client()
    visitor.base_url = f"https://{SERVER}"
    page = visitor.get("/signup", headers={"Accept-Language": language})
    assert f'<html lang="{language}">' in page.text
    assert heading in text_of(page)
