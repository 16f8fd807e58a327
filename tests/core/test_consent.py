"""Patients' consent to non-essential messages: staff note it on the patient's page, integrators
through the API, patients stop or confirm it with the link in a message."""

import html
import re
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from core.app import create_app
from core.clinic import apikeys, consent
from core.clinic.models import AuditEvent, Consent, ConsentAction, ConsentMethod, Patient
from core.db import db
from tenants.scoping import tenant_scope
from tests.core import double_opt_in
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

MARCH_3 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # 11:00 in Paris: the same day there


@pytest.fixture
def staff(admin_client):
    """The admin's browser, in English (the French clinic's pages are French by default)."""
    in_english(admin_client)
    return admin_client


@pytest.fixture
def patient(app, clinic_fr):
    return make_patient(app, clinic_fr)


@pytest.fixture
def api(app, clinic_fr, admin_client):
    """Calls to the clinic's API with a key of its own."""
    with app.app_context(), tenant_scope(clinic_fr.id):
        key, token = apikeys.create_key("practice software")
        db.session.commit()
        key_id = key.id

    def call(method, path, **kwargs):
        headers = {"Authorization": f"Bearer {token}"}
        return admin_client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    call.key_id = key_id
    return call


def in_english(client) -> None:
    """Choose English in the page footer, as a reader of any page can."""
    form = {"lang": "en", "next": "/", "csrf_token": any_csrf_token(client)}
    assert client.post("/language", data=form).status_code == 302


def any_csrf_token(client) -> str:
    """The CSRF token of the client's session, from the home page (or the login page)."""
    page = client.get("/", follow_redirects=True).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def steps(app, clinic) -> list[tuple]:
    """Every consent step of the clinic, oldest first: (channel, action, method, actor)."""
    with app.app_context(), tenant_scope(clinic.id):
        return [
            (c.channel, str(c.action), str(c.method), c.actor)
            for c in db.session.scalars(sa.select(Consent).order_by(Consent.at, Consent.id))
        ]


def record(app, clinic, patient, channel, action, method, actor="patient", at=MARCH_3):
    """A step as the domain records it (an SMS reply, a link...), moved to ``at``."""
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        step = consent.record(who, channel, action, method, actor)
        step.at = at
        db.session.commit()


def link(app, clinic, patient, channel="sms", action=ConsentAction.WITHDRAWN) -> str:
    """The path of a link the clinic puts in a message to the patient."""
    with app.app_context(), tenant_scope(clinic.id):
        url = consent.link(clinic, patient, channel, action)
    parts = urlsplit(url)
    assert parts.hostname == f"{clinic.slug}.relais.test", url  # the clinic's own address
    return parts.path


def row(page, channel: str) -> tuple[str, str]:
    """The class and the state in words of a channel's row in the consent table."""
    found = re.search(
        rf'<tr class="consent-(\w+)">\s*<th scope="row">{re.escape(channel)}</th>\s*'
        r'<td class="consent-state">(.*?)</td>',
        page.text,
        re.S,
    )
    assert found, f"no consent row for {channel}"
    return found.group(1), html.unescape(re.sub(r"<[^>]+>", "", found.group(2))).strip()


def post_consent(client, patient, **form):
    path = f"/patients/{patient.id}"
    data = {"action": "given", "csrf_token": csrf_token(client, path), **form}
    return client.post(f"{path}/consents", data=data)


# --- the staff page ---------------------------------------------------------------------------


def test_nobody_was_asked_yet(app, clinic_fr, staff, patient):
    page = staff.get(f"/patients/{patient.id}")
    assert "Consent to non-essential messages" in page.text
    for channel in ("SMS", "E-mail", "Push", "Voice"):
        assert row(page, channel) == ("none", "Not asked")
    assert "Nothing recorded yet." in page.text
    assert 'class="opted-out"' not in page.text


def test_staff_record_a_paper_consent_and_see_it_with_its_proof(
    app, clinic_fr, admin, staff, patient
):
    answer = post_consent(staff, patient, channel="sms", method="paper")
    assert answer.status_code == 303
    page = staff.get(answer.headers["Location"])
    assert "Consent recorded for SMS." in page.text
    status, words = row(page, "SMS")
    assert status == "given" and words.startswith("Given on ") and words.endswith("(paper form)")
    assert row(page, "E-mail") == ("none", "Not asked")
    assert steps(app, clinic_fr) == [("sms", "given", "paper", f"user:{admin.id}")]

    # The date in words, and the proof: when, what, how, who.
    with app.app_context(), tenant_scope(clinic_fr.id):
        db.session.execute(sa.update(Consent).values(at=MARCH_3))
        db.session.commit()
    page = staff.get(f"/patients/{patient.id}")
    assert row(page, "SMS") == ("given", "Given on March 3, 2026 (paper form)")
    start = page.text.index('<details class="history">')  # the proof, not the menu's
    proof = page.text[start : page.text.index("</details>", start)]
    assert "Proof of consent: every step (1)" in proof
    for seen in ("March 3, 2026", "SMS", "Given", "paper form", "Admin demo"):
        assert seen in proof

    with app.app_context(), tenant_scope(clinic_fr.id):
        audited = db.session.execute(sa.select(AuditEvent.actor, AuditEvent.action)).all()
    assert (f"user:{admin.id}", "consent.given") in audited


def test_an_opt_out_stands_out(app, clinic_fr, staff, patient):
    record(app, clinic_fr, patient, "sms", ConsentAction.GIVEN, ConsentMethod.PAPER, "user:x")
    stop = ConsentAction.WITHDRAWN, ConsentMethod.SMS_REPLY
    record(app, clinic_fr, patient, "sms", *stop, at=MARCH_3.replace(day=4))
    page = staff.get(f"/patients/{patient.id}")
    assert row(page, "SMS") == ("withdrawn", "Opted out on March 4, 2026 (SMS reply)")
    banner = re.search(r'<p class="opted-out".*?</p>', page.text, re.S).group(0)
    assert "Opted out of non-essential messages:" in banner and "SMS." in banner
    assert page.text.index('class="opted-out"') < page.text.index('class="facts"')  # on top
    assert 'Record an opt-out<span class="visually-hidden"> (SMS)' not in page.text
    assert "The patient" in page.text  # who opted out, in the proof


def test_staff_record_an_opt_out_once(app, clinic_fr, admin, staff, patient):
    answer = post_consent(staff, patient, channel="email", action="withdrawn", method="form")
    assert answer.status_code == 303
    page = staff.get(f"/patients/{patient.id}")
    assert "Opt-out recorded for E-mail." in page.text
    status, words = row(page, "E-mail")
    assert status == "withdrawn" and words.startswith("Opted out on ")

    again = post_consent(staff, patient, channel="email", action="withdrawn", method="form")
    assert again.status_code == 303
    assert "Already recorded for E-mail: nothing changed." in staff.get("/patients").text
    assert steps(app, clinic_fr) == [("email", "withdrawn", "form", f"user:{admin.id}")]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"channel": "fax", "method": "paper"}, "channel"),
        ({"method": "paper"}, "channel"),
        ({"channel": "sms", "method": "telepathy"}, "method"),
        ({"channel": "sms", "method": "link"}, "method"),  # the patient's own, not staff's
        ({"channel": "sms", "method": "paper", "action": "confirmed"}, "action"),
    ],
)
def test_bad_input_names_the_field_and_records_nothing(app, clinic_fr, staff, patient, form, field):
    page = post_consent(staff, patient, **form)
    assert page.status_code == 422
    assert "Choose one of:" in page.text
    if field == "action":
        assert re.search(
            r'<p class="error" role="alert">Choose one of: given, withdrawn', page.text
        )
    else:
        assert f'id="e-{field}"' in page.text and 'aria-invalid="true"' in page.text
    assert steps(app, clinic_fr) == []


def test_a_form_without_its_csrf_token_is_refused(app, clinic_fr, staff, patient):
    answer = staff.post(
        f"/patients/{patient.id}/consents",
        data={"channel": "sms", "action": "given", "method": "paper"},
    )
    assert answer.status_code == 400
    assert "The form could not be sent" in answer.text
    assert steps(app, clinic_fr) == []


def test_another_clinics_patient_is_not_found(app, clinic_fr, other_clinic, staff):
    stranger = make_patient(app, other_clinic)
    assert staff.get(f"/patients/{stranger.id}").status_code == 404
    answer = staff.post(
        f"/patients/{stranger.id}/consents",
        data={
            "channel": "sms",
            "action": "given",
            "method": "paper",
            "csrf_token": csrf_token(staff, "/patients"),
        },
    )
    assert answer.status_code == 404
    assert steps(app, other_clinic) == []


@pytest.fixture
def german_app(app):
    """An app whose plugins say Germany wants double opt-in."""
    application = create_app(
        {
            **TEST_CONFIG,
            "PLUGINS": ("plugins.channels.outbox.plugin", "tests.core.double_opt_in"),
        }
    )
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_where_double_opt_in_applies_a_consent_awaits_the_confirmation(german_app):
    clinic = make_clinic(german_app, "berlin", "DE", plugins=("outbox", "double_opt_in"))
    admin = make_staff(german_app, clinic, "admin")
    patient = make_patient(german_app, clinic, phone="+4915112345678", language="en")
    client = client_for(german_app, clinic.slug)
    log_in(client, admin)
    client.post("/language", data={"lang": "en", "csrf_token": csrf_token(client, "/")})
    double_opt_in.heard.clear()

    assert post_consent(client, patient, channel="sms", method="paper").status_code == 303
    # The country's plugin hears of it (relais_consent_recorded), to ask for the confirmation.
    assert double_opt_in.heard == [("sms", "given", f"user:{admin.id}")]
    with german_app.app_context(), tenant_scope(clinic.id):
        db.session.execute(sa.update(Consent).values(at=MARCH_3))
        db.session.commit()
    page = client.get(f"/patients/{patient.id}")
    assert row(page, "SMS") == (
        "given",
        "Awaiting the patient's confirmation: given on March 3, 2026 (paper form)",
    )

    # The patient confirms with the link of the message that asked them to.
    path = link(german_app, clinic, patient, "sms", ConsentAction.CONFIRMED)
    patient_browser = client_for(german_app, clinic.slug)
    ask = patient_browser.get(path)
    assert "Confirm your consent" in ask.text and ">Confirm</button>" in ask.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', ask.text).group(1)
    done = patient_browser.post(path, data={"csrf_token": token}, follow_redirects=True)
    assert "Thank you, your consent is confirmed" in done.text
    assert double_opt_in.heard[-1] == ("sms", "confirmed", "patient")
    status, words = row(client.get(f"/patients/{patient.id}"), "SMS")
    assert (
        status == "confirmed"
        and words.startswith("Confirmed on ")
        and "(link in a message)" in words
    )


# --- the JSON API -----------------------------------------------------------------------------


def test_api_reads_and_records_consents(app, clinic_fr, api, patient):
    empty = api("GET", f"/patients/{patient.id}/consents")
    assert empty.status_code == 200
    assert empty.json == {
        "channels": {
            c: {"status": "none", "at": None, "method": None}
            for c in ("sms", "email", "push", "voice")
        },
        "history": [],
    }

    given = api(
        "POST", f"/patients/{patient.id}/consents", json={"channel": "sms", "action": "given"}
    )
    assert given.status_code == 201
    assert given.json["channel"] == "sms" and given.json["changed"] is True
    assert given.json["status"] == "given" and given.json["method"] == "api"
    assert datetime.fromisoformat(given.json["at"]).tzinfo is not None

    same = api(
        "POST", f"/patients/{patient.id}/consents", json={"channel": "sms", "action": "given"}
    )
    assert same.status_code == 200
    assert same.json["changed"] is False and same.json["status"] == "given"

    paper = {"channel": "email", "action": "given", "method": "paper"}
    assert api("POST", f"/patients/{patient.id}/consents", json=paper).status_code == 201
    stop = {"channel": "sms", "action": "withdrawn"}
    assert api("POST", f"/patients/{patient.id}/consents", json=stop).json["status"] == "withdrawn"
    again = api("POST", f"/patients/{patient.id}/consents", json=stop)
    assert again.status_code == 200 and again.json["changed"] is False

    body = api("GET", f"/patients/{patient.id}/consents").json
    assert body["channels"]["sms"]["status"] == "withdrawn"
    assert body["channels"]["email"] == {
        "status": "given",
        "at": body["channels"]["email"]["at"],
        "method": "paper",
    }
    assert body["channels"]["push"]["status"] == "none"
    actor = f"api_key:{api.key_id}"
    assert [(s["channel"], s["action"], s["method"], s["actor"]) for s in body["history"]] == [
        ("sms", "withdrawn", "api", actor),
        ("email", "given", "paper", actor),
        ("sms", "given", "api", actor),
    ]  # newest first
    with app.app_context(), tenant_scope(clinic_fr.id):
        actions = set(
            db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.actor == actor))
        )
    assert {"consent.given", "consent.withdrawn", "patient.read"} <= actions


def test_api_confirmation_needs_a_consent_awaiting_it(app, clinic_fr, api, patient):
    path = f"/patients/{patient.id}/consents"
    nothing = api("POST", path, json={"channel": "push", "action": "confirmed"})
    assert nothing.status_code == 200 and nothing.json["changed"] is False
    assert nothing.json["status"] == "none"
    api("POST", path, json={"channel": "push", "action": "given"})
    confirmed = api("POST", path, json={"channel": "push", "action": "confirmed"})
    assert confirmed.status_code == 201 and confirmed.json["status"] == "confirmed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "given"}, "channel"),
        ({"channel": "fax", "action": "given"}, "channel"),
        ({"channel": ["sms"], "action": "given"}, "channel"),
        ({"channel": "sms"}, "action"),
        ({"channel": "sms", "action": "maybe"}, "action"),
        ({"channel": "sms", "action": "given", "method": "pigeon"}, "method"),
        ({"channel": "sms", "action": "given", "method": 3}, "method"),
        ({"channel": "sms", "action": "given", "purpose": "campaign"}, "purpose"),
    ],
)
def test_api_bad_input_is_a_422_naming_the_field(app, clinic_fr, api, patient, body, field):
    answer = api("POST", f"/patients/{patient.id}/consents", json=body)
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "invalid"
    assert answer.json["error"]["field"] == field and answer.json["error"]["message"]
    assert steps(app, clinic_fr) == []


def test_api_refuses_a_body_that_is_not_an_object(app, clinic_fr, api, patient):
    answer = api("POST", f"/patients/{patient.id}/consents", json=["sms"])
    assert answer.status_code == 422 and answer.json["error"]["field"] == "body"


def test_api_another_clinics_patient_is_a_404(app, clinic_fr, other_clinic, api):
    stranger = make_patient(app, other_clinic)
    for method, kwargs in (("GET", {}), ("POST", {"json": {"channel": "sms", "action": "given"}})):
        answer = api(method, f"/patients/{stranger.id}/consents", **kwargs)
        assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"
    assert api("GET", f"/patients/{uuid.uuid4()}/consents").status_code == 404
    assert steps(app, other_clinic) == []


# --- patients' links --------------------------------------------------------------------------


def test_a_patient_stops_messages_with_the_link_without_logging_in(app, clinic_fr, staff):
    patient = make_patient(app, clinic_fr, language="en")
    record(app, clinic_fr, patient, "sms", ConsentAction.GIVEN, ConsentMethod.PAPER, "user:x")
    path = link(app, clinic_fr, patient)
    browser = client_for(app, clinic_fr.slug)  # no session at all

    page = browser.get(path)
    assert page.status_code == 200
    assert '<html lang="en">' in page.text  # the patient's language
    assert "Stop news and campaigns" in page.text
    assert ">Stop these messages</button>" in page.text
    assert len(steps(app, clinic_fr)) == 1  # opening the link changes nothing

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = browser.post(path, data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"].endswith(path)
    done = browser.get(path)
    assert "Messages stopped" in done.text
    assert "You will no longer receive news and campaigns from Clinic demo by SMS." in done.text
    assert "Stop these messages" not in done.text
    assert steps(app, clinic_fr)[-1] == ("sms", "withdrawn", "link", "patient")

    # A second click (another tab, a reload) adds nothing.
    assert browser.post(path, data={"csrf_token": token}).status_code == 303
    assert len(steps(app, clinic_fr)) == 2

    status, words = row(staff.get(f"/patients/{patient.id}"), "SMS")
    assert status == "withdrawn" and words.endswith("(link in a message)")


def test_a_link_page_speaks_the_patients_language(app, clinic_fr, patient):
    page = client_for(app, clinic_fr.slug).get(link(app, clinic_fr, patient))
    assert '<html lang="fr">' in page.text


def test_an_opt_out_link_works_without_a_consent_before_it(app, clinic_fr, patient):
    path = link(app, clinic_fr, patient, "email")
    browser = client_for(app, clinic_fr.slug)
    token = csrf_token(browser, path)
    assert browser.post(path, data={"csrf_token": token}).status_code == 303
    assert steps(app, clinic_fr) == [("email", "withdrawn", "link", "patient")]


def test_a_confirmation_link_with_nothing_to_confirm_records_nothing(app, clinic_fr):
    patient = make_patient(app, clinic_fr, language="en")
    path = link(app, clinic_fr, patient, "sms", ConsentAction.CONFIRMED)
    browser = client_for(app, clinic_fr.slug)
    page = browser.get(path)
    assert "Nothing to confirm" in page.text and "<button" not in page.text.split("<footer")[0]
    assert browser.post(path, data={"csrf_token": any_csrf_token(browser)}).status_code == 303
    assert steps(app, clinic_fr) == []


def test_a_link_posted_without_its_csrf_token_is_refused(app, clinic_fr, patient):
    path = link(app, clinic_fr, patient)
    answer = client_for(app, clinic_fr.slug).post(path)
    assert answer.status_code == 400
    assert steps(app, clinic_fr) == []


def test_a_link_of_one_clinic_does_not_work_on_another(app, clinic_fr, other_clinic, patient):
    path = link(app, clinic_fr, patient)
    browser = client_for(app, other_clinic.slug)
    in_english(browser)
    page = browser.get(path)
    assert page.status_code == 404
    assert "This link cannot be used" in page.text
    assert '<p role="alert">This link is not valid.</p>' in page.text
    assert browser.post(path, data={"csrf_token": any_csrf_token(browser)}).status_code == 404
    assert steps(app, clinic_fr) == [] and steps(app, other_clinic) == []


@pytest.mark.parametrize("token", ["nonsense", "eyJwIjoiMSJ9.forged"])
def test_an_invalid_link_says_so(app, clinic_fr, token):
    browser = client_for(app, clinic_fr.slug)
    in_english(browser)
    page = browser.get(f"/consent/{token}")
    assert page.status_code == 404
    assert '<p role="alert">This link is not valid.</p>' in page.text
