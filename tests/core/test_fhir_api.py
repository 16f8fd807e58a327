"""The core's FHIR R4 resources: Patient (read, search) and the CapabilityStatement, valid for
fhir.resources and walled off per clinic."""

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.patient import Patient as FhirPatient

from core.clinic import apikeys
from core.db import db
from tenants.scoping import tenant_scope
from tests.worlds import client_for, make_clinic, make_patient, make_staff

PLUGINS = ("fr", "appointments", "messaging")


def api_for(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _key, token = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(app, clinic.slug)

    def call(path, **kwargs):
        return client.get(f"/api/v1/fhir{path}", headers={"Authorization": f"Bearer {token}"})

    return call


def test_patients_are_read_and_searched_as_fhir(app):
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    doctor = make_staff(app, clinic, "practitioner")
    jeanne = make_patient(
        app, clinic, birth_date="1980-04-02", email="jeanne@example.org", sex="female",
        practitioner_ids=[str(doctor.id)],
    )  # fmt: skip
    lucas = make_patient(app, clinic, first_name="Lucas", last_name="Bernard", phone="0698765432")
    api = api_for(app, clinic)

    read = api(f"/Patient/{jeanne.id}")
    assert read.status_code == 200 and read.mimetype == "application/fhir+json"
    patient = FhirPatient.model_validate(read.json)
    assert (patient.name[0].family, patient.name[0].given, str(patient.birthDate)) == (
        "Durand", ["Jeanne"], "1980-04-02",
    )  # fmt: skip
    assert {(t.system, t.value) for t in patient.telecom} == {
        ("phone", "+33612345678"),
        ("email", "jeanne@example.org"),
    }
    assert patient.gender == "female"  # FHIR's administrative gender, as recorded
    assert patient.generalPractitioner[0].reference == f"Practitioner/{doctor.id}"
    assert "attributes" not in read.get_data(as_text=True)
    assert "gender" not in api(f"/Patient/{lucas.id}").json  # none recorded, none said

    for query, total in (
        ("name=dur", 1), ("phone=06 12 34 56 78", 1), ("birthdate=1980-04-02", 1),
        ("name=bernard&birthdate=1980-04-02", 0), ("", 2),
    ):  # fmt: skip
        bundle = Bundle.model_validate(api(f"/Patient?{query}").json)
        assert (bundle.type, bundle.total) == ("searchset", total), query

    refused = api("/Patient?birthdate=soon")
    assert refused.status_code == 422
    assert refused.json["issue"][0]["expression"] == ["birthdate"]
    assert api("/Patient/nobody").status_code == 404


def test_another_clinic_s_patient_is_not_found(app):
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    other = make_clinic(app, "other", "FR", plugins=PLUGINS)
    theirs = make_patient(app, other)
    answer = api_for(app, clinic)(f"/Patient/{theirs.id}")
    assert answer.status_code == 404 and answer.json["resourceType"] == "OperationOutcome"


def test_the_capability_statement_lists_what_the_clinic_offers(app):
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    answer = client_for(app, clinic.slug).get("/api/v1/fhir/metadata")  # no key needed
    assert answer.status_code == 200
    statement = CapabilityStatement.model_validate(answer.json)
    resources = {r.type: r for r in statement.rest[0].resource}
    assert set(resources) == {"Patient", "Appointment", "Communication"}
    codes = {r: {i.code for i in resources[r].interaction} for r in resources}
    assert codes["Appointment"] == {"read", "search-type", "create", "update"}
    assert codes["Patient"] == {"read", "search-type"}
    params = {p.name: p.type for p in resources["Appointment"].searchParam}
    assert params["date"] == "date" and params["patient"] == "reference"

    plain = make_clinic(app, "plain", "DE", plugins=("de",))
    only = client_for(app, plain.slug).get("/api/v1/fhir/metadata").json
    assert [r["type"] for r in only["rest"][0]["resource"]] == ["Patient"]
