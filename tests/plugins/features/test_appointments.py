"""Appointments: practice software pushes them through the API, integrators read them as
FHIR, staff book, move and mark them in the agenda; every change reaches the plugins."""

import html
import re
import threading
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.bundle import Bundle
from flask_babel import force_locale, gettext

from core.app import create_app
from core.clinic import apikeys, settings
from core.clinic.models import AuditEvent, User
from core.db import db
from core.plugins import DEFAULT_PLUGINS
from plugins.features.appointments import Appointment, service
from tenants.scoping import tenant_scope
from tests.plugins.features import appointment_log
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
    wait_until,
)

PARIS = ZoneInfo("Europe/Paris")
PLUGINS = ("fr", "appointments", "appointment_log")
NOW = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)  # a Friday, before the clocks change


def paris(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=PARIS)


# --- the world --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relais(app):
    """Relais with its built-in plugins and one that logs appointment changes."""
    application = create_app(
        {**TEST_CONFIG, "PLUGINS": (*DEFAULT_PLUGINS, "tests.plugins.features.appointment_log")}
    )
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The service's time: 20 March 2026, 09:00 in Paris, unless a test moves it."""
    monkeypatch.setattr(service, "now", lambda: NOW)
    appointment_log.calls.clear()


@pytest.fixture
def clinic(relais):
    return make_clinic(relais, "demo", plugins=PLUGINS)


@pytest.fixture
def doctor(relais, clinic):
    return make_staff(relais, clinic, "practitioner", email="dr.martin@demo.example")


@pytest.fixture
def patient(relais, clinic):
    return make_patient(relais, clinic)


def api_for(relais, tenant):
    """Calls to a clinic's JSON API with a key of its own."""
    with relais.app_context(), tenant_scope(tenant.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(relais, tenant.slug)

    def call(method, path, **kwargs):
        return client.open(
            f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )

    return call


@pytest.fixture
def api(relais, clinic):
    return api_for(relais, clinic)


@pytest.fixture
def book(api, body):
    """Push an appointment (Monday 23 March 2026, 09:00 in Paris, 30 minutes) through the API."""

    def book(expect=201, **fields):
        answer = api("POST", "/appointments", json=body(**{"type": "consultation", **fields}))
        if expect is None:
            return answer.status_code, answer.json
        assert answer.status_code == expect, answer.json
        return answer.json

    return book


@pytest.fixture
def body(doctor, patient):
    """An appointment's JSON for the API, with ``fields`` changed."""

    def body(**fields) -> dict:
        return {
            "patient_id": str(patient.id),
            "practitioner_id": str(doctor.id),
            "starts_at": paris(3, 23, 9).isoformat(),
            "duration_minutes": 30,
            **fields,
        }

    return body


def stored(relais, tenant) -> list[Appointment]:
    with relais.app_context(), tenant_scope(tenant.id):
        rows = list(db.session.scalars(sa.select(Appointment).order_by(Appointment.starts_at)))
        db.session.expunge_all()
        return rows


def changes() -> list[str]:
    return [change for _slug, change, *_ in appointment_log.calls]


# --- the API: upsert by external id -----------------------------------------------------------


def test_the_same_external_id_pushed_twice_updates_one_appointment(relais, clinic, book, api):
    first = book(external_id="PS-1042", reason="Suivi tension")
    assert first["starts_at"] == "2026-03-23T08:00:00+00:00"
    assert first["ends_at"] == "2026-03-23T08:30:00+00:00"
    assert (first["status"], first["type"], first["reason"]) == (
        "booked",
        "consultation",
        "Suivi tension",
    )

    again = book(
        expect=200, external_id="PS-1042", starts_at=paris(3, 24, 14).isoformat(), type="Suivi"
    )
    assert again["id"] == first["id"]
    assert (again["starts_at"], again["type"], again["reason"]) == (
        "2026-03-24T13:00:00+00:00",
        "suivi",
        "Suivi tension",  # not sent: kept
    )
    assert book(expect=200, external_id="PS-1042", starts_at=paris(3, 24, 14).isoformat(),
                type="suivi")["id"] == first["id"]  # fmt: skip

    assert [a.external_id for a in stored(relais, clinic)] == ["PS-1042"]
    listed = api("GET", "/appointments?from=2026-03-23&to=2026-03-30").json
    assert (listed["total"], listed["appointments"][0]["id"]) == (1, first["id"])
    # Created, then moved; the third push changed nothing and told nobody.
    assert changes() == ["created", "moved"]


def test_the_same_external_id_pushed_twice_at_once_still_makes_one(
    relais, clinic, book, monkeypatch
):
    """The second push waits on the first one's row; when the first commits, it updates."""
    monkeypatch.setattr(appointment_log, "hold", threading.Event())
    answers = []

    def push(minutes):
        answers.append(book(expect=None, external_id="PS-9", duration_minutes=minutes))

    first = threading.Thread(target=push, args=(30,))
    first.start()
    wait_until(lambda: appointment_log.calls)  # the first is inside its transaction
    second = threading.Thread(target=push, args=(45,))
    second.start()
    wait_until(lambda: waiting_on_a_lock(relais))  # the second's insert waits for the first
    appointment_log.hold.set()
    first.join(10)
    second.join(10)

    assert sorted(status for status, _ in answers) == [200, 201]
    [row] = stored(relais, clinic)
    assert (row.external_id, row.minutes) == ("PS-9", 45)


def waiting_on_a_lock(relais) -> bool:
    with relais.app_context(), db.engine.connect() as conn:
        return bool(
            conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


def test_a_reason_is_stored_encrypted(relais, clinic, book):
    book(reason="Douleurs thoraciques")
    with relais.app_context(), db.engine.connect() as conn:
        raw = conn.scalar(sa.text("SELECT reason FROM appointments"))
    assert raw and "Douleurs" not in raw


def test_without_a_place_the_appointment_is_at_the_clinics_address(relais, clinic, book):
    with relais.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "appointments", {"address": "3 rue des Lilas, Lyon"})
        db.session.commit()
    assert book()["location"] == "3 rue des Lilas, Lyon"
    assert book(starts_at=paris(3, 23, 10).isoformat(), location="Domicile")["location"] == (
        "Domicile"
    )


# --- the API: bad input -----------------------------------------------------------------------


@pytest.fixture
def said(relais):
    """What a message reads like in the French clinic's answers (English when the catalog
    has no French for it yet)."""

    def said(message):
        text, variables = message if isinstance(message, tuple) else (message, {})
        with relais.test_request_context(), force_locale("fr"):
            return gettext(text, **variables)

    return said


def refused(answer, field: str) -> str:
    assert answer.status_code == 422, answer.json
    error = answer.json["error"]
    assert (error["code"], error["field"]) == ("invalid", field)
    return error["message"]


STATUSES = "booked, confirmed, cancelled, no_show, done"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"starts_at": paris(3, 19, 9).isoformat()},
            "starts_at",
            "This time is past: an appointment is booked for a time to come.",
        ),
        (
            {"starts_at": "2026-03-23T09:00:00"},
            "starts_at",
            "Give an ISO 8601 time with its offset.",
        ),
        ({"patient_id": str(uuid.uuid4())}, "patient_id", "No such patient."),
        ({"patient_id": None}, "patient_id", "This field is required."),
        ({"practitioner_id": str(uuid.uuid4())}, "practitioner_id", "Unknown practitioner."),
        ({"practitioner_id": "dr-who"}, "practitioner_id", "Unknown practitioner."),
        (
            {"ends_at": paris(3, 23, 9).isoformat(), "duration_minutes": None},
            "ends_at",
            "The end must be after the start.",
        ),
        (
            {"ends_at": paris(3, 23, 8).isoformat(), "duration_minutes": None},
            "ends_at",
            "The end must be after the start.",
        ),
        (
            {"ends_at": paris(3, 23, 10).isoformat()},
            "duration_minutes",
            "Give the end or the duration, not both.",
        ),
        (
            {"duration_minutes": 0},
            "duration_minutes",
            ("A duration from 1 to %(max)d minutes.", {"max": 1440}),
        ),
        ({"duration_minutes": "long"}, "duration_minutes", "Enter a whole number."),
        ({"duration_minutes": None}, "ends_at", "Give the end or the duration."),
        ({"status": "maybe"}, "status", ("Choose one of: %(v)s.", {"v": STATUSES})),
        ({"type": 42}, "type", "Give the type as text, e.g. consultation."),
        (
            {"type": "<script>"},
            "type",
            "A short word, e.g. consultation (letters, digits, spaces, - and _).",
        ),
        ({"reason": "x" * 2001}, "reason", ("At most %(n)d characters.", {"n": 2000})),
        ({"room": "2"}, "room", ("Unknown field: %(field)s.", {"field": "room"})),
        ({"external_id": ["a"]}, "external_id", "Give the external id as text."),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    relais, clinic, api, body, said, fields, field, message
):
    assert refused(api("POST", "/appointments", json=body(**fields)), field) == said(message)
    assert stored(relais, clinic) == []
    assert changes() == []
    with relais.app_context(), tenant_scope(clinic.id):
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert "appointment.create" not in actions


def test_another_clinics_patient_or_a_secretary_cannot_be_booked(relais, clinic, api, body, said):
    other = make_clinic(relais, "other", plugins=PLUGINS)
    stranger = make_patient(relais, other, first_name="Paul")
    secretary = make_staff(relais, clinic, "secretary")
    answer = api("POST", "/appointments", json=body(patient_id=str(stranger.id)))
    assert refused(answer, "patient_id") == said("No such patient.")
    answer = api("POST", "/appointments", json=body(practitioner_id=str(secretary.id)))
    assert refused(answer, "practitioner_id") == said("Unknown practitioner.")
    assert refused(api("POST", "/appointments", data="not json"), "body")
    assert stored(relais, clinic) == []


def test_a_deactivated_practitioner_gets_no_new_appointment(relais, clinic, doctor, book, said):
    made = book(external_id="PS-3")
    with relais.test_request_context(), tenant_scope(clinic.id):
        db.session.get(User, (clinic.id, doctor.id)).active = False
        db.session.commit()
    message = book(expect=422, starts_at=paris(3, 23, 11).isoformat())["error"]["message"]
    assert message == said("This practitioner's account is deactivated.")
    # Its appointments stay, and practice software may still push them (here: done).
    assert book(expect=200, external_id="PS-3", status="done")["id"] == made["id"]


def test_types_are_those_the_clinic_declared(relais, clinic, book, api, body, said):
    with relais.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "appointments", {"types": "Consultation, Vaccination"})
        db.session.commit()
    message = refused(api("POST", "/appointments", json=body(type="surgery")), "type")
    assert message == said(("Choose one of: %(v)s.", {"v": "consultation, vaccination"}))
    assert book(type=None)["type"] == "consultation"  # the first declared one
    assert book(starts_at=paris(3, 23, 10).isoformat(), type="VACCINATION")["type"] == (
        "vaccination"
    )


def test_overlaps_are_refused_unless_the_clinic_allows_them(relais, clinic, book, api, body, said):
    first = book()  # 09:00-09:30
    overlapping = body(starts_at=paris(3, 23, 9, 15).isoformat())
    message = refused(api("POST", "/appointments", json=overlapping), "starts_at")
    assert message == said(
        (
            "%(name)s already has an appointment from %(start)s to %(end)s.",
            {"name": "Practitioner demo", "start": "09:00", "end": "09:30"},
        )
    )
    # Back to back is no overlap; another practitioner is free.
    book(starts_at=paris(3, 23, 9, 30).isoformat())
    colleague = make_staff(relais, clinic, "practitioner", email="dr.petit@demo.example")
    book(starts_at=paris(3, 23, 9, 15).isoformat(), practitioner_id=str(colleague.id))
    # A cancelled appointment frees its time.
    assert api("POST", f"/appointments/{first['id']}/cancel").status_code == 200
    book(starts_at=paris(3, 23, 9, 0).isoformat(), duration_minutes=20)

    with relais.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "appointments", {"overlaps": "allow"})
        db.session.commit()
    book(starts_at=paris(3, 23, 9, 10).isoformat())
    assert len(stored(relais, clinic)) == 5


# --- the API: reading, moving, cancelling, statuses -------------------------------------------


def test_move_confirm_and_cancel_through_the_api(relais, clinic, book, api, said):
    made = book()
    path = f"/appointments/{made['id']}"

    moved = api("PATCH", path, json={"starts_at": paris(3, 30, 9).isoformat()})
    assert moved.status_code == 200
    # After the clocks changed: 09:00 in Paris is 07:00 UTC; the duration stays.
    assert (moved.json["starts_at"], moved.json["ends_at"]) == (
        "2026-03-30T07:00:00+00:00",
        "2026-03-30T07:30:00+00:00",
    )
    confirmed = api("PATCH", path, json={"status": "confirmed"}).json
    assert confirmed["status"] == "confirmed"
    assert refused(api("PATCH", path, json={"status": "gone"}), "status")
    assert refused(api("PATCH", path, json={"patient_id": made["patient_id"]}), "patient_id")
    assert refused(api("PATCH", path, json={"ends_at": paris(3, 30, 8).isoformat()}), "ends_at")

    cancelled = api("POST", f"{path}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json["status"] == "cancelled" and cancelled.json["cancelled_at"]
    again = api("POST", f"{path}/cancel")
    assert again.json == cancelled.json  # nothing changed
    message = refused(
        api("PATCH", path, json={"starts_at": paris(3, 31, 9).isoformat()}), "starts_at"
    )
    assert message == said("A cancelled appointment cannot be moved: book a new one.")

    assert api("GET", path).json["status"] == "cancelled"
    assert changes() == ["created", "moved", "status", "cancelled"]
    done = api("PATCH", path, json={"status": "booked"}).json  # booked again: its slot is free
    assert done["status"] == "booked" and done["cancelled_at"] is None
    assert changes()[-1] == "status"


def test_the_list_filters_by_time_practitioner_patient_and_status(
    relais, clinic, book, api, doctor
):
    other_patient = make_patient(relais, clinic, first_name="Lucas", last_name="Bernard")
    a = book()
    b = book(starts_at=paris(3, 24, 9).isoformat(), patient_id=str(other_patient.id))
    book(starts_at=paris(4, 2, 9).isoformat())

    def ids(query):
        answer = api("GET", f"/appointments?{query}")
        assert answer.status_code == 200, answer.json
        return [x["id"] for x in answer.json["appointments"]]

    week = "from=2026-03-23&to=2026-03-30"
    assert ids(week) == [a["id"], b["id"]]
    assert ids(f"{week}&patient={other_patient.id}") == [b["id"]]
    assert ids(f"{week}&practitioner={doctor.id}") == [a["id"], b["id"]]
    assert ids(f"{week}&practitioner={uuid.uuid4()}") == []
    assert ids(f"{week}&status=confirmed") == []
    assert ids("from=2026-03-24T08:00:00%2B00:00&to=2026-03-25") == [b["id"]]
    assert refused(api("GET", "/appointments?from=2026-03-30&to=2026-03-23"), "to")
    assert refused(api("GET", "/appointments?from=tomorrow"), "from")
    assert refused(api("GET", "/appointments?patient=someone"), "patient")


def test_another_clinics_appointment_is_not_found(relais, clinic, book):
    mine = book(external_id="PS-1")
    other = make_clinic(relais, "other", plugins=PLUGINS)
    theirs = api_for(relais, other)
    path = f"/appointments/{mine['id']}"

    for method, url, body in (
        ("GET", path, None),
        ("PATCH", path, {"status": "done"}),
        ("POST", f"{path}/cancel", None),
        ("GET", f"/fhir/Appointment/{mine['id']}", None),
    ):
        answer = theirs(method, url, json=body)
        assert answer.status_code == 404, (method, url)
    assert theirs("GET", "/appointments?from=2026-03-01&to=2026-04-01").json["total"] == 0
    assert theirs("GET", "/fhir/Appointment").json["total"] == 0

    # The same external id in another clinic is another appointment (of its own patient).
    stranger = make_staff(relais, other, "practitioner")
    their_patient = make_patient(relais, other)
    body = {
        "external_id": "PS-1",
        "patient_id": str(their_patient.id),
        "practitioner_id": str(stranger.id),
        "starts_at": paris(3, 23, 9).isoformat(),
        "duration_minutes": 15,
    }
    assert theirs("POST", "/appointments", json=body).status_code == 201
    assert [a.status.value for a in stored(relais, clinic)] == ["booked"]
    assert len(stored(relais, other)) == 1


def test_the_api_needs_a_key_and_the_feature(relais, clinic, book):
    client = client_for(relais, clinic.slug)
    answer = client.get("/api/v1/appointments")
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthorized"
    elsewhere = make_clinic(relais, "berlin", "DE", plugins=())
    assert api_for(relais, elsewhere)("GET", "/appointments").status_code == 404


# --- the hook ---------------------------------------------------------------------------------


def test_plugins_hear_each_change_once_the_row_is_flushed(relais, clinic, book, api):
    made = book()
    path = f"/appointments/{made['id']}"
    api("PATCH", path, json={"starts_at": paris(3, 23, 11).isoformat(), "status": "confirmed"})
    api("PATCH", path, json={"location": "Cabinet 2"})  # neither moved nor a status
    api("PATCH", path, json={"status": "done"})
    api("POST", f"{path}/cancel")

    appointment_id = uuid.UUID(made["id"])
    assert appointment_log.calls == [
        ("demo", "created", appointment_id, "booked", "booked"),
        ("demo", "moved", appointment_id, "confirmed", "confirmed"),
        ("demo", "status", appointment_id, "confirmed", "confirmed"),
        ("demo", "status", appointment_id, "done", "done"),
        ("demo", "cancelled", appointment_id, "cancelled", "cancelled"),
    ]


def test_the_hook_reaches_only_plugins_enabled_for_the_clinic(relais, clinic, doctor, patient):
    # appointment_log is on in France (the clinic fixture), not in Germany.
    quiet = make_clinic(relais, "quiet", "DE", plugins=("appointments",))
    doctor_q = make_staff(relais, quiet, "practitioner")
    patient_q = make_patient(relais, quiet)
    with relais.test_request_context(), tenant_scope(quiet.id):
        service.create(
            quiet,
            {
                "patient_id": patient_q.id,
                "practitioner_id": doctor_q.id,
                "starts_at": paris(3, 23, 9),
                "duration_minutes": 20,
            },
        )
        db.session.commit()
    assert appointment_log.calls == []


# --- FHIR -------------------------------------------------------------------------------------


def test_fhir_search_gives_a_valid_bundle_of_valid_appointments(
    relais, clinic, book, api, doctor, patient
):
    first = book(external_id="PS-7", reason="Renouvellement")
    second = book(starts_at=paris(3, 27, 17, 30).isoformat(), duration_minutes=45)
    api("PATCH", f"/appointments/{second['id']}", json={"status": "confirmed"})
    book(starts_at=paris(3, 30, 9).isoformat())  # the next week
    someone_else = make_patient(relais, clinic, first_name="Lucas", last_name="Bernard")
    book(starts_at=paris(3, 25, 9).isoformat(), patient_id=str(someone_else.id))

    answer = api(
        "GET",
        f"/fhir/Appointment?date=ge2026-03-23&date=lt2026-03-30&patient={patient.id}"
        f"&practitioner=Practitioner/{doctor.id}",
    )
    assert answer.status_code == 200
    assert answer.mimetype == "application/fhir+json"
    bundle = Bundle.model_validate(answer.json)
    assert (bundle.type, bundle.total) == ("searchset", 2)
    resources = [FhirAppointment.model_validate(e.resource.model_dump()) for e in bundle.entry]
    assert [r.id for r in resources] == [first["id"], second["id"]]
    assert (
        bundle.entry[0].fullUrl == f"https://demo.relais.test/api/v1/fhir/Appointment/{first['id']}"
    )

    one, two = resources
    assert (one.status, one.start, one.end, one.minutesDuration) == (
        "booked",
        datetime(2026, 3, 23, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 23, 8, 30, tzinfo=UTC),
        30,
    )
    assert one.identifier[0].value == "PS-7"
    assert one.reasonCode[0].text == "Renouvellement"
    assert one.appointmentType.text == "consultation"
    actors = [(p.actor.reference, p.actor.display, p.status) for p in one.participant]
    assert actors == [
        (f"Patient/{patient.id}", "Jeanne Durand", "needs-action"),
        (f"Practitioner/{doctor.id}", "Practitioner demo", "accepted"),
    ]
    assert (two.status, two.start) == ("booked", datetime(2026, 3, 27, 16, 30, tzinfo=UTC))
    assert two.participant[0].status == "accepted"  # the patient confirmed

    read = api("GET", f"/fhir/Appointment/{first['id']}")
    assert read.status_code == 200 and read.mimetype == "application/fhir+json"
    assert FhirAppointment.model_validate(read.json).start == one.start

    # A day is the clinic's day: 30 March starts at 22:00 UTC on the 29th.
    day = Bundle.model_validate(api("GET", "/fhir/Appointment?date=2026-03-30").json)
    assert day.total == 1 and day.entry[0].resource.start == datetime(2026, 3, 30, 7, tzinfo=UTC)
    cancelled = api("GET", "/fhir/Appointment?status=cancelled").json
    assert Bundle.model_validate(cancelled).total == 0


def test_fhir_pages_and_errors_are_fhir_too(relais, clinic, book, api):
    for hour in (8, 9, 10):
        book(starts_at=paris(3, 23, hour).isoformat())
    page = Bundle.model_validate(api("GET", "/fhir/Appointment?_count=2").json)
    assert (page.total, len(page.entry)) == (3, 2)
    following = {link.relation: link.url for link in page.link}["next"]
    assert "_offset=2" in following
    rest = Bundle.model_validate(api("GET", following.split("/api/v1", 1)[1]).json)
    assert len(rest.entry) == 1

    for query, field in (("date=soon", "date"), ("patient=Practitioner/1", "patient"),
                         ("status=maybe", "status"), ("_count=-1", "_count")):  # fmt: skip
        answer = api("GET", f"/fhir/Appointment?{query}")
        assert answer.status_code == 422 and answer.mimetype == "application/fhir+json"
        issue = answer.json["issue"][0]
        assert (answer.json["resourceType"], issue["code"], issue["expression"]) == (
            "OperationOutcome",
            "invalid",
            [field],
        )
    missing = api("GET", f"/fhir/Appointment/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json["issue"][0]["code"] == "not-found"
    keyless = client_for(relais, clinic.slug).get("/api/v1/fhir/Appointment")
    assert keyless.status_code == 401 and keyless.mimetype == "application/fhir+json"
    assert keyless.json["issue"][0]["code"] == "security"


# --- the agenda -------------------------------------------------------------------------------


class Agenda(HTMLParser):
    """What the agenda's time grid shows on each day: time ranges and patients, in order."""

    def __init__(self, html: str):
        super().__init__()
        self.days: dict[str, list[str]] = {}
        self._day = None
        self._field = None
        self.html = html
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "data-day" in attrs:
            self._day = attrs["data-day"]
            self.days.setdefault(self._day, [])
        elif tag == "p" and self._day and attrs.get("class") in ("when", "who"):
            self._field = attrs["class"]
            self.days[self._day].append("")

    def handle_endtag(self, tag):
        if tag == "td":
            self._day = None
        elif tag == "p":
            self._field = None

    def handle_data(self, data):
        if self._day and self._field:
            self.days[self._day][-1] += data.strip()


@pytest.fixture
def secretary_client(relais, clinic):
    client = client_for(relais, clinic.slug)
    log_in(client, make_staff(relais, clinic, "secretary"))
    return client


def test_the_week_is_shown_in_the_clinics_time_zone_across_the_change_of_clocks(
    relais, clinic, book, secretary_client, said
):
    book(starts_at=paris(3, 28, 9).isoformat())  # Saturday, UTC+1
    book(starts_at=paris(3, 29, 9).isoformat())  # Sunday, the clocks went forward at 02:00
    book(starts_at=paris(3, 29, 23, 30).isoformat())  # Sunday night: 21:30 UTC
    monday = book(starts_at=paris(3, 30, 9).isoformat())
    assert monday["starts_at"] == "2026-03-30T07:00:00+00:00"
    assert stored(relais, clinic)[-1].starts_at == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)

    page = secretary_client.get("/agenda?date=2026-03-26")
    assert page.status_code == 200
    days = Agenda(page.text).days
    assert list(days) == [f"2026-03-{d}" for d in range(23, 30)]  # Monday to Sunday
    assert days["2026-03-23"] == []
    assert days["2026-03-28"] == ["09:00–09:30", "Jeanne Durand"]
    assert days["2026-03-29"] == ["09:00–09:30", "Jeanne Durand", "23:30–00:00", "Jeanne Durand"]
    assert said(("Times in %(zone)s", {"zone": "Europe/Paris"})) in page.text

    following = re.search(rf'<a href="([^"]+)">{said("Next week")}</a>', page.text).group(1)
    days = Agenda(secretary_client.get(following.replace("&amp;", "&")).text).days
    assert list(days)[0] == "2026-03-30"
    assert days["2026-03-30"] == ["09:00–09:30", "Jeanne Durand"]

    day = Agenda(secretary_client.get("/agenda?view=day&date=2026-03-29").text).days
    assert list(day) == ["2026-03-29"] and len(day["2026-03-29"]) == 4


def test_staff_book_from_the_agenda_in_local_time(
    relais, clinic, doctor, patient, secretary_client
):
    token = csrf_token(secretary_client, "/agenda")
    form = {
        "csrf_token": token,
        "view": "week",
        "date": "2026-03-26",
        "patient_id": str(patient.id),
        "practitioner_id": str(doctor.id),
        "day": "2026-03-30",
        "starts_at": "10:15",
        "duration_minutes": "20",
        "type": "Vaccination",
        "location": "",
        "reason": "Rappel",
    }
    page = secretary_client.post("/agenda/appointments", data=form)
    assert page.status_code == 303
    assert "date=2026-03-30" in page.headers["Location"]
    shown = secretary_client.get(page.headers["Location"])
    # The French clinic's page says the day in French.
    assert (
        "Rendez-vous pris : Jeanne Durand, lundi 30 mars 2026 à 10:15 avec Practitioner demo."
        in shown.text
    )
    assert Agenda(shown.text).days["2026-03-30"] == ["10:15–10:35", "Jeanne Durand"]
    [made] = stored(relais, clinic)
    assert (made.starts_at, made.type, made.reason) == (
        datetime(2026, 3, 30, 8, 15, tzinfo=UTC),
        "vaccination",
        "Rappel",
    )
    assert changes() == ["created"]

    # 02:30 on 29 March does not exist in Paris; an end before the start; the past.
    for fields, field in (
        ({"day": "2026-03-29", "starts_at": "02:30"}, "starts_at"),
        ({"starts_at": "11:00", "ends_at": "10:00"}, "ends_at"),
        ({"day": "2026-03-19"}, "starts_at"),
        ({"patient_id": ""}, "patient_id"),
    ):
        page = secretary_client.post("/agenda/appointments", data={**form, **fields})
        assert page.status_code == 422
        assert re.search(rf'id="f-{field}"[^>]*aria-invalid="true"', page.text), field
        assert f'id="e-{field}"' in page.text
    assert len(stored(relais, clinic)) == 1


def test_staff_confirm_move_mark_and_cancel_from_the_agenda(
    relais, clinic, book, secretary_client, said
):
    made = book()
    token = csrf_token(secretary_client, "/agenda?date=2026-03-23")
    base = f"/agenda/appointments/{made['id']}"
    back = {"csrf_token": token, "view": "week", "date": "2026-03-23"}

    page = secretary_client.post(f"{base}/status", data={**back, "status": "confirmed"})
    assert page.status_code == 303
    shown = secretary_client.get(page.headers["Location"]).text
    status = {"patient": "Jeanne Durand", "time": "09:00", "status": said("Confirmed")}
    assert said(("%(patient)s, %(time)s: %(status)s.", status)) in shown

    page = secretary_client.post(
        f"{base}/move", data={**back, "day": "2026-03-30", "starts_at": "09:00"}
    )
    assert page.status_code == 303 and "date=2026-03-30" in page.headers["Location"]
    assert Agenda(secretary_client.get(page.headers["Location"]).text).days["2026-03-30"] == [
        "09:00–09:30",
        "Jeanne Durand",
    ]
    # A time that is not one: the move form comes back open, the error at its field.
    week = {**back, "date": "2026-03-30"}
    nine = {"day": "2026-03-30", "starts_at": "nine"}
    refused = secretary_client.post(f"{base}/move", data={**week, **nine})
    assert refused.status_code == 422
    assert f'id="m-{made["id"]}-starts_at-error"' in refused.text
    assert re.search(r"<details open>\s*<summary>", refused.text)
    # From a week where it is not shown, the error is said at the top.
    refused = secretary_client.post(f"{base}/move", data={**back, **nine})
    assert refused.status_code == 422
    assert f'<p class="error" role="alert">{said("Use the form HH:MM.")}</p>' in refused.text

    secretary_client.post(f"{base}/status", data={**back, "status": "no_show"})
    secretary_client.post(f"{base}/status", data={**back, "status": "cancelled"})
    [row] = stored(relais, clinic)
    assert row.status.value == "cancelled" and row.cancelled_at == NOW
    assert changes() == ["created", "status", "moved", "status", "cancelled"]
    cancelled = Agenda(secretary_client.get("/agenda?date=2026-03-30").text)
    assert cancelled.days["2026-03-30"] == ["09:00–09:30", "Jeanne Durand"]
    assert f'<span class="status">{said("Cancelled")}</span>' in cancelled.html


def test_the_agenda_is_in_the_menu_where_the_feature_is_on(relais, clinic, secretary_client):
    home = secretary_client.get("/")
    assert 'href="/agenda"' in home.text and ">Agenda<" in home.text
    elsewhere = make_clinic(relais, "berlin", "DE", plugins=())
    client = client_for(relais, "berlin")
    log_in(client, make_staff(relais, elsewhere, "secretary"))
    assert client.get("/agenda").status_code == 404
    assert 'href="/agenda"' not in client.get("/").text


def test_a_booking_form_with_several_mistakes_shows_them_all_at_once(
    relais, clinic, doctor, patient, secretary_client, said
):
    form = {
        "csrf_token": csrf_token(secretary_client, "/agenda"),
        "view": "week",
        "date": "2026-03-26",
        "patient_id": "",
        "practitioner_id": str(doctor.id),
        "day": "2026-03-30",
        "starts_at": "nine",
        "duration_minutes": "20",
        "type": "X-ray!",
        "location": "",
        "reason": "",
    }
    page = secretary_client.post("/agenda/appointments", data=form)
    assert page.status_code == 422
    for field in ("patient_id", "starts_at", "type"):
        assert re.search(rf'id="f-{field}"[^>]*aria-invalid="true"', page.text), field
        assert f'id="e-{field}"' in page.text
    summary = re.search(r'<div class="error-summary".*?</div>', page.text, re.S).group(0)
    assert "Le rendez-vous n'est pas pris : 3 points à corriger." in summary
    links = re.findall(r'<li><a href="#f-(\w+)">([^<]+)</a></li>', summary)
    assert [field for field, _text in links] == ["patient_id", "type", "starts_at"]
    assert links[2][1] == f"{said('Start')} : {said('Use the form HH:MM.')}"
    assert stored(relais, clinic) == []


def test_the_grid_shows_free_slots_to_book_and_appointments_spanning_their_time(
    relais, clinic, doctor, book, secretary_client, said
):
    book(starts_at=paris(3, 23, 9).isoformat())  # Monday 09:00–09:30
    page = secretary_client.get("/agenda?view=day&date=2026-03-23").text
    # 09:00 and 09:15 are one cell; 09:30 is free, with a link that fills the booking form.
    assert re.search(r'<td class="slot busy" data-day="2026-03-23"[^>]*rowspan="2"', page)
    free = re.search(r'<a class="book" href="([^"]+)"><span aria-hidden="true">\+</span>', page)
    assert free
    nine_thirty = re.search(r'href="([^"]*slot=2026-03-23T09:30[^"]*)"', page).group(1)
    prefilled = secretary_client.get(nine_thirty.replace("&amp;", "&")).text
    assert re.search(r'id="f-starts_at" name="starts_at" type="time" value="09:30"', prefilled)
    assert re.search(r'id="f-day" name="day" type="date" value="2026-03-23"', prefilled)
    assert re.search(rf'<option value="{doctor.id}" selected>', prefilled)
    # The past (before Friday 20 March, 09:00 in Paris) has no slot to book.
    past = secretary_client.get("/agenda?view=day&date=2026-03-19").text
    assert 'class="book"' not in past and 'class="slot past"' in past


def test_the_home_page_shows_todays_appointments_and_whether_they_are_confirmed(
    relais, clinic, doctor, patient, book, api, secretary_client, said
):
    today = datetime.now(PARIS).date()

    def at(hour):
        return datetime.combine(today, datetime.min.time().replace(hour=hour), PARIS)

    later = book(starts_at=at(15).isoformat())
    book(starts_at=at(10).isoformat())
    api("PATCH", f"/appointments/{later['id']}", json={"status": "confirmed"})
    home = secretary_client.get("/").text
    card = re.search(
        r'<section class="board-card[^"]*" aria-labelledby="board-1">.*?</section>', home, re.S
    )
    text = html.unescape(" ".join(re.sub(r"<[^>]+>", " ", card.group(0)).split()))
    assert text.startswith("2 " + said("Today's appointments"))
    assert text.index("10:00 Jeanne Durand") < text.index("15:00 Jeanne Durand")
    assert f"{said('Not confirmed')}" in text and f"{said('Confirmed')}" in text
    assert f'href="/agenda?view=day&amp;date={today.isoformat()}"' in card.group(0)


# --- FHIR writes: practice software pushing Appointment resources ----------------------------


def fhir_appointment(patient, doctor, **fields) -> dict:
    resource = {
        "resourceType": "Appointment",
        "identifier": [{"system": "urn:relais:appointment:external-id", "value": "PS-900"}],
        "status": "booked",
        "appointmentType": {"text": "consultation"},
        "reasonCode": [{"text": "Vaccin"}],
        "start": "2026-03-23T08:00:00Z",
        "minutesDuration": 20,
        "participant": [
            {"actor": {"reference": f"Patient/{patient.id}"}, "status": "needs-action"},
            {"actor": {"reference": f"Practitioner/{doctor.id}"}, "status": "accepted"},
        ],
    }
    FhirAppointment.model_validate(resource)  # what we send is valid FHIR R4
    return {**resource, **fields}


def test_fhir_create_is_idempotent_by_identifier_and_update_moves_and_cancels(
    relais, clinic, api, doctor, patient
):
    resource = fhir_appointment(patient, doctor)
    created = api("POST", "/fhir/Appointment", json=resource)
    assert created.status_code == 201 and created.mimetype == "application/fhir+json"
    booked = FhirAppointment.model_validate(created.json)
    assert (booked.start, booked.minutesDuration, booked.reasonCode[0].text) == (
        datetime(2026, 3, 23, 8, tzinfo=UTC),
        20,
        "Vaccin",
    )
    assert created.headers["Location"].endswith(f"/api/v1/fhir/Appointment/{booked.id}")

    again = api("POST", "/fhir/Appointment", json={**resource, "start": "2026-03-23T09:00:00Z"})
    assert again.status_code == 200 and again.json["id"] == booked.id  # the same, moved
    assert api("GET", "/appointments").json["total"] == 1

    cancelled = api(
        "PUT", f"/fhir/Appointment/{booked.id}", json={**resource, "status": "cancelled"}
    )
    assert cancelled.status_code == 200
    assert FhirAppointment.model_validate(cancelled.json).status == "cancelled"
    assert api("GET", f"/appointments/{booked.id}").json["status"] == "cancelled"


def test_fhir_writes_refuse_bad_resources_naming_the_element(relais, clinic, api, doctor, patient):
    other = make_patient(relais, clinic, first_name="Lucas", phone="0698765432")
    good = fhir_appointment(patient, doctor)
    for resource, element in (
        ({**good, "resourceType": "Patient"}, "Appointment.resourceType"),
        ({**good, "status": "proposed"}, "Appointment.status"),
        ({**good, "start": "tomorrow"}, "Appointment.start"),
        ({**good, "participant": good["participant"][:1]}, "Appointment.participant"),
        ({**good, "participant": "me"}, "Appointment.participant"),
        ({**good, "minutesDuration": -5}, "Appointment.minutesDuration"),
    ):
        answer = api("POST", "/fhir/Appointment", json=resource)
        assert answer.status_code == 422, (resource, answer.json)
        assert answer.json["issue"][0]["expression"] == [element]
    assert api("GET", "/appointments").json["total"] == 0  # nothing written

    booked = api("POST", "/fhir/Appointment", json=good).json
    moved_to_other = fhir_appointment(other, doctor)
    answer = api("PUT", f"/fhir/Appointment/{booked['id']}", json=moved_to_other)
    assert answer.status_code == 409
    assert api("PUT", f"/fhir/Appointment/{uuid.uuid4()}", json=good).status_code == 404
