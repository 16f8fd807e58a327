"""The console's *Limits* pages: the operator sets a country's sending limits and a clinic's
own over them (add, change, remove) beside today's use; bad input changes nothing and names
the field; every change is audited; the page and ``relais limits set`` are one way."""

import html
import logging

import pytest
import sqlalchemy as sa

from core.clinic import apikeys
from core.clinic.models import AuditEvent
from core.db import db
from core.delivery import limits
from core.web.cli import main
from tenants.models import Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.tenants.test_console import make_operator, post
from tests.worlds import (
    client_for,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

EVERY = {s.name: "" for s in limits.SETTINGS}


@pytest.fixture
def console(app):
    client = client_for(app, "operator")
    log_in(client, make_operator(app))
    return client


@pytest.fixture
def clinic(app):
    return make_clinic(app, "rive", "FR", plugins=("fr", "outbox"))


def text_of(page) -> str:
    return html.unescape(page.text)


def country_values(app, code="FR") -> dict:
    with app.app_context(), system_scope():
        return limits.country_limits(code)


def clinic_values(app, slug="rive") -> dict:
    with app.app_context(), system_scope():
        tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == slug))
        return limits.limits_for(tenant)


def audit_of(app, clinic) -> list[tuple[str, str, str]]:
    with app.app_context(), tenant_scope(clinic.id):
        return [
            (e.action, e.actor, e.detail)
            for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.at))
        ]


def test_the_operator_sets_a_countrys_limits(app, console, clinic, caplog):
    with caplog.at_level(logging.INFO, logger="relais.operators"):
        saved = post(
            console, "/limits/FR", **{**EVERY, "per_minute": "600", "per_day_sms": "20000"}
        )
    assert saved.status_code == 302
    assert country_values(app)["per_minute"] == 600
    assert clinic_values(app) == {**country_values(app), "per_day_sms": 20000}
    assert "operator set the sending limits of FR: per_day_sms=20000, per_minute=600" in caplog.text

    page = console.get(saved.location)
    assert 'value="20000"' in page.text
    assert "The limits of France are saved." in text_of(page)
    listing = text_of(console.get("/limits"))
    assert "France" in listing and "20,000" in listing and "600" in listing

    assert post(console, "/limits/FR", **{**EVERY, "per_minute": "600"}).status_code == 302
    assert country_values(app)["per_day_sms"] == 0  # emptied: no limit


def test_a_clinic_gets_its_own_limits_then_follows_its_country_again(app, console, clinic):
    post(console, "/limits/FR", **{**EVERY, "per_minute": "600"})
    found = post(console, "/limits/FR", action="find", clinic="Rive")
    assert found.status_code == 302 and found.headers["Location"].endswith(
        "/limits/FR/clinics/rive"
    )
    page = text_of(console.get("/limits/FR/clinics/rive"))
    assert "Empty: the country's (600)." in page

    added = post(console, "/limits/FR/clinics/rive", **{**EVERY, "per_minute": "5"})
    assert added.status_code == 302
    assert clinic_values(app)["per_minute"] == 5 and country_values(app)["per_minute"] == 600
    listing = text_of(console.get("/limits/FR"))
    assert "Clinic rive" in listing and "No clinic of this country has limits" not in listing

    changed = post(console, "/limits/FR/clinics/rive", **{**EVERY, "per_day_email": "0"})
    assert changed.status_code == 302
    assert clinic_values(app)["per_minute"] == 600  # emptied: the country's again

    removed = post(console, "/limits/FR/clinics/rive", action="remove")
    assert removed.status_code == 302
    assert "follows the limits of its country again" in text_of(console.get(removed.location))
    assert clinic_values(app) == country_values(app)
    assert "No clinic of this country has limits of its own." in text_of(console.get("/limits/FR"))
    assert audit_of(app, clinic) == [
        ("limits.set", "operator", "per_minute=5"),
        ("limits.set", "operator", "per_day_email=0"),
        ("limits.set", "operator", "none of its own"),
    ]


def test_todays_use_shows_beside_the_clinics_limits(app, console, clinic):
    post(console, "/limits/FR/clinics/rive", **{**EVERY, "per_day_sms": "10"})
    patient = make_patient(app, clinic)
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    api = client_for(app, "rive")
    body = {"patient_id": str(patient.id), "purpose": "transactional", "template": "Bonjour."}
    for _ in range(3):
        sent = api.post("/api/v1/messages", json=body, headers={"Authorization": f"Bearer {token}"})
        assert sent.status_code == 202
    page = text_of(console.get("/limits/FR/clinics/rive"))
    listing = text_of(console.get("/limits/FR"))
    assert "3 of 10" in page
    assert "Transactional" in page
    assert '<td class="num">3</td>' in listing


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("per_minute", "-1", "A whole number from 0 (no limit)."),
        ("per_minute", "ten", "A whole number from 0 (no limit)."),
        ("per_day_sms", "2.5", "A whole number from 0 (no limit)."),
        ("per_day_voice", "10000001", "At most 10,000,000."),
        ("per_minute", "1" + "0" * 30, "A whole number from 0 (no limit)."),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_changes(
    app, console, clinic, field, value, words
):
    post(console, "/limits/FR", **{**EVERY, "per_minute": "600"})
    post(console, "/limits/FR/clinics/rive", **{**EVERY, "per_minute": "5"})
    for path in ("/limits/FR", "/limits/FR/clinics/rive"):
        refused = post(console, path, **{**EVERY, "per_day_email": "7", field: value})
        assert refused.status_code == 422
        assert f'id="e-{field}"' in refused.text and words in text_of(refused)
    assert country_values(app)["per_minute"] == 600 and country_values(app)["per_day_email"] == 0
    assert clinic_values(app)["per_minute"] == 5 and clinic_values(app)["per_day_email"] == 0
    assert [a for a, _, _ in audit_of(app, clinic)] == ["limits.set"]


def test_a_clinic_of_another_country_or_none_is_refused(app, console, clinic):
    make_clinic(app, "berlin", "DE", plugins=("de",))
    wrong = post(console, "/limits/FR", action="find", clinic="berlin")
    assert wrong.status_code == 422
    assert 'id="e-clinic"' in wrong.text and "No clinic of France has this subdomain" in text_of(
        wrong
    )
    assert console.get("/limits/FR/clinics/berlin").status_code == 404
    assert post(console, "/limits/FR/clinics/berlin", per_minute="1").status_code == 404
    assert console.get("/limits/XX").status_code == 404
    assert clinic_values(app, "berlin")["per_minute"] == 0


def test_changes_need_the_csrf_token_and_an_operator(app, console, clinic):
    assert console.post("/limits/FR", data={**EVERY, "per_minute": "1"}).status_code == 400
    staff = client_for(app, "operator")
    log_in(client_for(app, "rive"), make_staff(app, clinic))
    assert staff.get("/limits/FR").status_code in (302, 404)  # the login page, or nothing
    assert country_values(app)["per_minute"] == 0


def test_the_page_and_the_cli_are_one_way(app, console, clinic, runner):
    done = runner.invoke(main, ["limits", "set", "--clinic", "rive", "per_minute=7"])
    assert done.exit_code == 0, done.output
    assert 'value="7"' in console.get("/limits/FR/clinics/rive").text
    assert audit_of(app, clinic) == [("limits.set", "operator", "per_minute=7")]
