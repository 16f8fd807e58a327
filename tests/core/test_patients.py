"""Staff and integrators manage patients; every read is audited, health data encrypted."""

import logging
import re
import uuid

import pytest
import sqlalchemy as sa

from core.clinic import apikeys
from core.clinic.models import AuditEvent, Patient
from core.db import db
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import csrf_token, make_patient, make_staff

FORM = {
    "first_name": "Jeanne",
    "last_name": "Durand",
    "phone": "06 12 34 56 78",
    "email": "Jeanne.Durand@Example.org",
    "birth_date": "1958-03-14",
    "language": "fr",
    "timezone": "Europe/Paris",
}


@pytest.fixture
def api(app, clinic_fr, admin_client):
    """The admin client with the clinic's API key: API calls on the clinic's subdomain."""
    with app.app_context(), tenant_scope(clinic_fr.id):
        key, token = apikeys.create_key("practice software")
        db.session.commit()
        key_id = key.id

    def call(method, path, **kwargs):
        headers = {"Authorization": f"Bearer {token}"}
        return admin_client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    call.key_id = key_id
    return call


def patients_in(app, tenant) -> list[Patient]:
    with app.app_context(), tenant_scope(tenant.id):
        rows = db.session.scalars(sa.select(Patient)).all()
        db.session.expunge_all()
        return rows


def test_staff_create_a_patient_with_a_national_phone(app, clinic_fr, admin_client):
    doctor = make_staff(app, clinic_fr, "practitioner", email="doc@demo.example")
    form = {
        **FORM,
        "attributes": ["chronic_disease"],
        "practitioner_ids": [str(doctor.id)],
        "csrf_token": csrf_token(admin_client, "/patients/new"),
    }
    response = admin_client.post("/patients/new", data=form)
    assert response.status_code == 302

    page = admin_client.get(response.headers["Location"])
    assert "06 12 34 56 78" in page.text  # stored in E.164, shown the clinic's national way
    assert "jeanne.durand@example.org" in page.text.lower()
    assert "Chronic disease" in page.text or "Maladie chronique" in page.text
    assert "Practitioner demo" in page.text
    [patient] = patients_in(app, clinic_fr)
    assert patient.phone == "+33612345678"
    assert str(patient.id) in response.headers["Location"]


def test_the_patients_tab_is_current_on_every_patient_page(app, clinic_fr, admin_client):
    patient = make_patient(app, clinic_fr)
    path = f"/patients/{patient.id}"
    refused_consent = admin_client.post(
        f"{path}/consents",
        data={"channel": "fax", "action": "given", "csrf_token": csrf_token(admin_client, path)},
    )
    assert refused_consent.status_code == 422  # the patient's page again, its error shown
    pages = [admin_client.get(p) for p in ("/patients", "/patients/new", path, f"{path}/edit")]
    for page in [*pages, refused_consent]:
        nav = re.search(r"<nav\b.*?</nav>", page.text, re.S).group(0)  # the main one, first
        assert 'href="/patients" aria-current="page">' in nav, page.request.path
        assert nav.count('aria-current="page"') == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "12"),
        ("email", "not-an-email"),
        ("birth_date", "14/03/1958"),
        ("birth_date", "2999-01-01"),
        ("timezone", "Mars/Olympus"),
        ("first_name", ""),
        ("preferred_channel", "fax"),
        ("sex", "woman"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(app, clinic_fr, admin_client, field, value):
    form = {**FORM, field: value, "csrf_token": csrf_token(admin_client, "/patients/new")}
    page = admin_client.post("/patients/new", data=form)
    assert page.status_code == 422
    assert f'id="e-{field}"' in page.text
    assert f'id="f-{field}"' in page.text and 'aria-invalid="true"' in page.text
    assert patients_in(app, clinic_fr) == []


def test_staff_record_a_patients_sex_or_leave_it_unsaid(app, clinic_fr, admin_client):
    form = {**FORM, "sex": "female", "csrf_token": csrf_token(admin_client, "/patients/new")}
    created = admin_client.post("/patients/new", data=form)
    assert created.status_code == 302
    page = admin_client.get(created.headers["Location"])
    assert re.search(r"<dt>(Sex|Sexe)</dt><dd>(Female|Femme)</dd>", page.text)
    [patient] = patients_in(app, clinic_fr)
    assert patient.sex == "female"
    path = f"/patients/{patient.id}/edit"
    assert '<option value="female" selected>' in admin_client.get(path).text
    form = {**FORM, "sex": "", "csrf_token": csrf_token(admin_client, path)}
    assert admin_client.post(path, data=form).status_code == 302
    [patient] = patients_in(app, clinic_fr)
    assert patient.sex is None  # "not given" again


def test_edit_keeps_what_was_not_changed(app, clinic_fr, admin_client):
    patient = make_patient(app, clinic_fr, email="old@example.org")
    path = f"/patients/{patient.id}/edit"
    form = {**FORM, "email": "new@example.org", "csrf_token": csrf_token(admin_client, path)}
    assert admin_client.post(path, data=form).status_code == 302
    [stored] = patients_in(app, clinic_fr)
    assert stored.email == "new@example.org" and stored.phone == "+33612345678"

    bad = admin_client.post(path, data={**form, "phone": "0000", "email": "x@example.org"})
    assert bad.status_code == 422
    [stored] = patients_in(app, clinic_fr)
    assert stored.email == "new@example.org"  # a refused edit changes nothing


def test_search_by_name_phone_or_email(app, clinic_fr, admin_client):
    make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand", phone="0612345678")
    make_patient(
        app,
        clinic_fr,
        first_name="Paul",
        last_name="Moreau",
        phone="0142685300",
        email="paul@example.org",
    )
    assert "Moreau" in admin_client.get("/patients?q=moreau").text
    found = admin_client.get("/patients?q=%2B3314268").text
    assert "Moreau" in found and "Durand" not in found
    assert "Moreau" in admin_client.get("/patients?q=paul@example").text
    listing = admin_client.get("/patients").text
    assert listing.index("Durand") < listing.index("Moreau")


@pytest.mark.parametrize(
    "typed",
    [
        "06 12 34 56 78",  # national, spaced
        "0612345678",
        "06.12.34.56.78",
        "+33 6 12 34 56 78",  # international
        "+33612345678",
        "0033 6 12 34 56 78",  # international, dialled from France
        "06 12 34",  # the start of it
        "56 78",  # the end of it
        "durand 06 12",  # a name and a number
    ],
)
def test_staff_find_a_patient_by_a_number_however_it_is_typed(app, clinic_fr, admin_client, typed):
    make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand", phone="0612345678")
    make_patient(app, clinic_fr, first_name="Paul", last_name="Moreau", phone="0142685300")
    make_patient(app, clinic_fr, first_name="Hans", last_name="Weber", phone="+4930901820")
    found = admin_client.get("/patients", query_string={"q": typed}).text
    assert "Durand" in found and "Moreau" not in found and "Weber" not in found


def test_phones_are_shown_in_the_clinics_national_format(app, clinic_fr, admin_client):
    jeanne = make_patient(app, clinic_fr, phone="0612345678")
    make_patient(app, clinic_fr, first_name="Hans", last_name="Weber", phone="+4930901820")
    listing = admin_client.get("/patients").text
    assert '<td class="nowrap">06 12 34 56 78</td>' in listing
    assert '<td class="nowrap">+49 30 901820</td>' in listing  # another country's
    assert "+33612345678" not in listing
    record = admin_client.get(f"/patients/{jeanne.id}").text
    assert "<dd>06 12 34 56 78</dd>" in record
    assert 'value="06 12 34 56 78"' in admin_client.get(f"/patients/{jeanne.id}/edit").text


def test_reads_are_audited(app, clinic_fr, admin_client, admin):
    patient = make_patient(app, clinic_fr)
    admin_client.get(f"/patients/{patient.id}")
    with app.app_context(), tenant_scope(clinic_fr.id):
        events = db.session.execute(
            sa.select(AuditEvent.actor, AuditEvent.action, AuditEvent.object_id)
        ).all()
    assert (f"user:{admin.id}", "patient.read", patient.id) in events


def test_health_data_is_encrypted_at_rest(app, clinic_fr):
    make_patient(app, clinic_fr, attributes=["pregnancy_follow_up"])
    with app.app_context(), system_scope():
        raw = db.session.execute(sa.text("SELECT attributes FROM patients")).scalar_one()
        db.session.rollback()
    assert "pregnancy" not in raw
    [patient] = patients_in(app, clinic_fr)
    assert patient.attributes == ["pregnancy_follow_up"]


def test_no_health_data_in_logs(app, clinic_fr, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    form = {
        **FORM,
        "attributes": ["pregnancy_follow_up"],
        "csrf_token": csrf_token(admin_client, "/patients/new"),
    }
    admin_client.post("/patients/new", data=form)
    assert "pregnancy" not in caplog.text and "612345678" not in caplog.text


# --- the JSON API -----------------------------------------------------------------------------


def test_api_creates_reads_updates_and_lists(app, clinic_fr, api):
    created = api(
        "POST",
        "/patients",
        json={
            "first_name": "Amina",
            "last_name": "Petit",
            "phone": "+33 6 55 44 33 22",
            "attributes": ["pregnancy_follow_up"],
            "sex": "female",
        },
    )
    assert created.status_code == 201
    body = created.json
    assert body["phone"] == "+33655443322" and body["language"] == "fr"
    assert body["sex"] == "female"
    assert uuid.UUID(body["id"]).version == 7  # opaque, not a counter

    assert api("GET", f"/patients/{body['id']}").json["last_name"] == "Petit"
    patched = api(
        "PATCH",
        f"/patients/{body['id']}",
        json={"email": "amina@example.org", "preferred_channel": "voice"},
    )
    assert patched.status_code == 200
    assert patched.json["email"] == "amina@example.org" and patched.json["first_name"] == "Amina"
    assert patched.json["preferred_channel"] == "voice" and body["preferred_channel"] is None
    listing = api("GET", "/patients?q=petit").json
    assert listing["total"] == 1 and listing["patients"][0]["id"] == body["id"]

    with app.app_context(), tenant_scope(clinic_fr.id):
        actions = set(
            db.session.scalars(
                sa.select(AuditEvent.action).where(AuditEvent.actor == f"api_key:{api.key_id}")
            )
        )
    assert {"patient.create", "patient.read", "patient.update", "patient.search"} <= actions


def test_the_phone_line_is_stored_with_the_phone(app, clinic_fr, api):
    """Workers read whether a patient's phone takes SMS from the record, not the number."""
    created = api(
        "POST", "/patients", json={"first_name": "A", "last_name": "B", "phone": "0612345678"}
    )
    patient_id = uuid.UUID(created.json["id"])

    def line():
        with app.app_context(), tenant_scope(clinic_fr.id):
            return db.session.get(Patient, (clinic_fr.id, patient_id)).phone_line

    assert line() == "mobile"
    api("PATCH", f"/patients/{patient_id}", json={"phone": "01 42 68 53 00"})
    assert line() == "landline"
    api("PATCH", f"/patients/{patient_id}", json={"phone": None})
    assert line() is None


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"first_name": "A", "last_name": "B", "phone": "123"}, "phone", 422),
        ({"first_name": "A", "last_name": "B", "email": "a@"}, "email", 422),
        ({"first_name": "A", "last_name": "B", "attributes": ["vip"]}, "attributes", 422),
        ({"first_name": "A", "last_name": "B", "language": "xx"}, "language", 422),
        ({"first_name": "A", "last_name": "B", "sex": "F"}, "sex", 422),
        (
            {"first_name": "A", "last_name": "B", "preferred_channel": "fax"},
            "preferred_channel",
            422,
        ),
        (
            {"first_name": "A", "last_name": "B", "practitioner_ids": ["nope"]},
            "practitioner_ids",
            422,
        ),
        ({"first_name": "A", "last_name": "B", "ssn": "1"}, "ssn", 422),
        ({"last_name": "B"}, "first_name", 422),
    ],
)
def test_api_bad_input_is_a_4xx_naming_the_field(app, clinic_fr, api, body, field, status):
    response = api("POST", "/patients", json=body)
    assert response.status_code == status
    assert response.json["error"]["field"] == field
    assert response.json["error"]["message"]
    assert patients_in(app, clinic_fr) == []


def test_api_refuses_a_body_that_is_not_a_json_object(app, clinic_fr, api):
    response = api("POST", "/patients", data="first_name=A", content_type="text/plain")
    assert response.status_code == 422 and response.json["error"]["field"] == "body"


def test_api_unknown_patient_is_a_json_404(app, clinic_fr, api):
    response = api("GET", f"/patients/{uuid.uuid4()}")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_only_practitioners_can_be_linked(app, clinic_fr, api):
    secretary = make_staff(app, clinic_fr, "secretary")
    response = api(
        "POST",
        "/patients",
        json={"first_name": "A", "last_name": "B", "practitioner_ids": [str(secretary.id)]},
    )
    assert response.status_code == 422
