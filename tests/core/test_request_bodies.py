"""Every route's input is bounded before its view reads it: the body's size, the JSON's depth,
and no NUL character or lone surrogate in a query argument, a form field or a JSON text."""

import html
import time

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext

from core.clinic import apikeys
from core.clinic.models import Patient
from core.db import db
from tenants.scoping import tenant_scope
from tests.worlds import client_for, csrf_token, log_in, make_clinic, make_staff

DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=("fr", "outbox", "otp", "sms_infobip"))


@pytest.fixture
def bearer(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def patients(app, clinic) -> int:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalar(sa.select(sa.func.count(Patient.id)))


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/patients",
        "/me/api/code",
        "/me/api/code/verify",
        "/me/api/signup",
        "/webhooks/infobip_sms/receipts",
    ],
)
def test_json_nested_too_deep_is_a_400_on_the_body_even_unauthenticated(app, clinic, bearer, path):
    client = client_for(app, clinic.slug)
    started = time.monotonic()
    answer = client.post(path, data=DEEP, content_type="application/json", headers=bearer)
    assert time.monotonic() - started < 1
    assert answer.status_code == 400
    if path.startswith(("/api/", "/me/api/")):
        assert answer.json["error"]["field"] == "body"


def test_json_of_32_levels_is_read_and_of_33_refused(app, clinic, bearer):
    client = client_for(app, clinic.slug)

    def nested(levels: int) -> dict:
        value: object = "x"
        for _ in range(levels - 1):
            value = {"n": value}
        return {"first_name": "Ana", "last_name": "Lima", "language": value}

    assert client.post("/api/v1/patients", json=nested(32), headers=bearer).status_code == 422
    refused = client.post("/api/v1/patients", json=nested(33), headers=bearer)
    assert refused.status_code == 400 and refused.json["error"]["field"] == "body"


def test_a_body_over_the_limit_is_a_413_with_a_message(app, clinic, bearer):
    client = client_for(app, clinic.slug)
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    answer = client.post(
        "/api/v1/patients", data=big, content_type="application/json", headers=bearer
    )
    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "too_large"
    assert answer.json["error"]["field"] == "body"
    page = client.post("/login", data={"email": big})
    assert page.status_code == 413
    with app.test_request_context(), force_locale("fr"):
        assert gettext("This request is too large.") in html.unescape(page.text)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "Ana\x00", "last_name": "Lima"}, "first_name"),
        ({"first_name": "Ana\ud800", "last_name": "Lima"}, "first_name"),
        ({"first_name": "Ana", "last_name": "Lima", "attributes": ["a\x00"]}, "attributes[0]"),
    ],
)
def test_nul_and_lone_surrogates_in_json_are_refused_naming_the_field(
    app, clinic, bearer, body, field
):
    client = client_for(app, clinic.slug)
    answer = client.post("/api/v1/patients", json=body, headers=bearer)
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == field
    assert patients(app, clinic) == 0


def test_nul_in_a_form_or_a_query_is_refused_naming_the_field(app, clinic):
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    token = csrf_token(client, "/patients/new")
    answer = client.post(
        "/patients/new",
        data={"csrf_token": token, "first_name": "Ana\x00", "last_name": "Lima", "phone": ""},
    )
    assert answer.status_code == 422
    assert "first_name" in answer.text
    assert patients(app, clinic) == 0
    assert client.get("/patients?q=%00").status_code == 422
    assert client.get("/consent/a%00b").status_code == 422  # a part of the path
