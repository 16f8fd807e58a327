"""The causes of 500s an outside fuzzer found, each now a 4xx naming the field, with nothing
stored: NUL and lone surrogates, huge page numbers, dates at year 1 or 9999, lists of the
wrong type, a 1 MB time zone name, an Infobip report of the wrong shape."""

import base64
import json

import pytest
import sqlalchemy as sa

from core import validation as check
from core.clinic import apikeys
from core.clinic import settings as plugin_settings
from core.clinic.models import Patient
from core.db import db
from core.errors import ValidationError
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import client_for, log_in, make_clinic, make_patient, make_staff

SECRET = "a-webhook-secret-set-by-the-operator"
PLUGINS = ("fr", "outbox", "appointments", "reminders", "sms_infobip")


@pytest.fixture
def clinic(app):
    tenant = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    with app.app_context(), system_scope():
        plugin_settings.save(
            "FR",
            "sms_infobip",
            {"api_key": "k", "base_url": "http://127.0.0.1:9", "sender": "Relais"}
            | {"webhook_secret": SECRET},
        )
        db.session.commit()
    return tenant


@pytest.fixture
def api(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(app, clinic.slug)

    def call(method, path, **kwargs):
        headers = {"Authorization": f"Bearer {token}"}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    return call


def patient_count(app, clinic) -> int:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalar(sa.select(sa.func.count(Patient.id)))


NEW = {"first_name": "Ana", "last_name": "Lima"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"last_name": "Li\x00ma"}, "last_name"),
        ({"last_name": "Li\ud800ma"}, "last_name"),
        ({"practitioner_ids": 5}, "practitioner_ids"),
        ({"attributes": [{}]}, "attributes"),
        ({"attributes": "pregnancy_follow_up"}, "attributes"),
        ({"timezone": "Z" * 1_000_000}, "timezone"),
        ({"timezone": "Europe/Paris\x00"}, "timezone"),
        ({"birth_date": "0001-01-01"}, "birth_date"),
        ({"first_name": {"a": 1}}, "first_name"),
    ],
)
def test_a_bad_patient_is_refused_naming_the_field(app, clinic, api, change, field):
    answer = api("POST", "/patients", json={**NEW, **change})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == field
    assert patient_count(app, clinic) == 0


@pytest.mark.parametrize("page", ["100000000000000000000", "-5", "x", "100001"])
def test_a_page_number_out_of_range_is_refused(app, clinic, api, page):
    for path in ("/patients", "/appointments"):
        answer = api("GET", f"{path}?page={page}")
        assert answer.status_code == 422, (path, answer.json)
        assert answer.json["error"]["field"] == "page"


def test_a_page_number_out_of_range_on_a_page_says_so(app, clinic):
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    for path in ("/patients", "/messages"):
        assert client.get(f"{path}?page=100000000000000000000").status_code == 422, path


EXTREMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-12:00"]


@pytest.mark.parametrize("at", EXTREMES)
def test_dates_at_year_1_or_9999_are_refused_naming_the_field(app, clinic, api, at):
    patient = make_patient(app, clinic)
    doctor = make_staff(app, clinic, "practitioner", email="dr@demo.example")
    booked = api(
        "POST",
        "/appointments",
        json={
            "external_id": "A1",
            "patient_id": str(patient.id),
            "practitioner_id": str(doctor.id),
            "starts_at": at,
            "duration_minutes": 30,
        },
    )
    assert booked.status_code == 422 and booked.json["error"]["field"] == "starts_at"
    message = api(
        "POST",
        "/messages",
        json={"patient_id": str(patient.id), "purpose": "transactional", "template": "Hi"}
        | {"not_before": at},
    )
    assert message.status_code == 422 and message.json["error"]["field"] == "not_before"
    day = at[:10]
    for path, field in [
        (f"/appointments?from={day}", "from"),
        (f"/appointments?to={day}", "to"),
        (f"/fhir/Appointment?date={day}", "date"),
        (f"/fhir/Appointment?date=ge{at[:4]}", "date"),
        (f"/reminders/stats?from={day}", "from"),
    ]:
        answer = api("GET", path)
        assert answer.status_code == 422, (path, answer.json)
        assert field in json.dumps(answer.json), path


def test_the_audit_log_refuses_a_day_at_year_9999(app, clinic):
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    assert client.get("/audit?from=9999-12-31").status_code == 422


def test_the_shared_parsers_bound_what_they_read():
    with pytest.raises(ValidationError):
        check.whole_number("9" * 30, "n")
    with pytest.raises(ValidationError):
        check.moment("9999-12-31T23:00:00+00:00", "at")
    with pytest.raises(ValidationError):
        check.day("0001-01-01", "on")
    with pytest.raises(ValidationError):
        check.text("a\x00", "name", 10)
    assert check.page(None) == 1 and check.whole_number("0", "n") == 0


@pytest.mark.parametrize(
    "report",
    [
        {"error": "an error as a string"},
        {"status": "DELIVERED"},
        {"messageId": "m\x00"},
        {"doneAt": "0001-01-01T00:00:00.000+0100"},
    ],
)
def test_an_infobip_report_of_the_wrong_shape_is_refused(app, clinic, report):
    body = {
        "results": [
            {
                "messageId": "m1",
                "status": {"groupName": "UNDELIVERABLE", "name": "X"},
                "doneAt": "2026-05-04T10:00:00.000+0200",
                **report,
            }
        ]
    }
    client = client_for(app, clinic.slug)
    auth = base64.b64encode(f"relais:{SECRET}".encode()).decode()
    answer = client.post(
        "/webhooks/infobip_sms/receipts", json=body, headers={"Authorization": f"Basic {auth}"}
    )
    assert answer.status_code in (400, 422)
