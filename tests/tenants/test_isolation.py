"""One clinic never sees nor changes another clinic's data: by the ORM, by RLS, by cookies."""

import uuid
from datetime import timedelta

import sqlalchemy as sa
from werkzeug.routing import Rule

from core.clinic import apikeys
from core.clinic.models import ApiKey, AuditEvent, Patient, User, patient_practitioners
from core.db import db, utcnow
from core.delivery import access_links, outbox
from core.delivery.models import Message
from plugins.features import appointments, messaging
from plugins.features.campaigns.models import Campaign
from plugins.features.messaging import templates_service
from plugins.features.vaccination import staff as vaccination_staff
from plugins.features.vaccination.models import Campaign as VaccinationCampaign
from plugins.features.vaccination.models import WaitlistEntry
from tenants.scoping import tenant_scope
from tests.plugins.features.messaging_world import patient_browser
from tests.plugins.features.vaccination_world import at, build, today
from tests.worlds import (
    SERVER,
    client_for,
    csrf_token,
    make_clinic,
    make_patient,
    make_staff,
)

TENANT_TABLES = (
    Patient,
    User,
    ApiKey,
    AuditEvent,
    Message,
    appointments.Appointment,
    messaging.Conversation,
    messaging.ThreadMessage,
    messaging.Attachment,
)


def make_key(app, tenant) -> tuple[ApiKey, str]:
    with app.app_context(), tenant_scope(tenant.id):
        key, token = apikeys.create_key("practice software")
        db.session.commit()
        return key.id, token


def snapshot(app, tenant) -> dict:
    """Every tenant-owned row of a clinic, as plain values."""
    with app.app_context(), tenant_scope(tenant.id):
        rows = {}
        for model in TENANT_TABLES:
            table = model.__table__
            rows[table.name] = sorted(
                tuple(str(v) for v in row) for row in db.session.execute(sa.select(table))
            )
        rows["patient_practitioners"] = sorted(
            tuple(str(v) for v in row)
            for row in db.session.execute(sa.select(patient_practitioners))
        )
        return rows


def test_every_route_refuses_another_clinics_objects(app, clinic_fr, admin_client):
    # Features on in France (for both clinics), so that their routes answer for real.
    other = make_clinic(
        app,
        "other",
        plugins=("fr", "exports", "appointments", "messaging", "campaigns", "vaccination"),
    )
    their_admin = make_staff(app, other, "admin")
    their_doctor = make_staff(app, other, "practitioner")
    their_patient = make_patient(
        app, other, first_name="Secret", last_name="Patient", practitioner_ids=[their_doctor.id]
    )
    their_key, _ = make_key(app, other)
    with app.app_context(), tenant_scope(other.id):
        recipient = db.session.get(Patient, (other.id, their_patient.id))
        their_message = outbox.send(other, recipient, "transactional", "Private", {}, ["sms"]).id
        their_link = access_links.make_token(other, recipient)  # an access link's token
        db.session.commit()
    with app.test_request_context(), tenant_scope(other.id):
        their_appointment = appointments.create(
            other,
            {
                "patient_id": their_patient.id,
                "practitioner_id": their_doctor.id,
                "starts_at": utcnow() + timedelta(days=1),
                "duration_minutes": 30,
            },
        ).id
        db.session.commit()
    with app.app_context(), tenant_scope(other.id):
        patient = db.session.get(Patient, (other.id, their_patient.id))
        pdf = [("result.pdf", b"%PDF-1.4 private")]
        their_conversation = messaging.start_request(
            other, patient, their_doctor.id, "Private request", pdf
        ).id
        their_attachment = db.session.scalar(sa.select(messaging.Attachment.id))
        their_message_in_thread = db.session.scalar(sa.select(messaging.ThreadMessage.id))
        doctor = db.session.get(User, (other.id, their_doctor.id))
        their_template = templates_service.save(doctor, None, "Private", "Hello", True)
        db.session.flush()
        their_template = their_template.id
        db.session.commit()
    # A campaign, and vaccination doses (one given), a waitlist place: theirs.
    vaccination = build(app, other)
    first = at(today() + timedelta(days=1), 9)
    doses = (
        client_for(app, other.slug)
        .post(
            "/api/v1/vaccination/bookings",
            headers={"Authorization": f"Bearer {vaccination.token}"},
            json={
                "patient": str(their_patient.id),
                "centre": str(vaccination.centre_id),
                "vaccine": str(vaccination.vaccine_id),
                "first": first.isoformat(),
                "second": (first + timedelta(days=28)).isoformat(),
            },
        )
        .json["doses"]
    )
    with app.app_context(), tenant_scope(other.id):
        vaccination_staff.mark_given(other, uuid.UUID(doses[0]["id"]), "FK1234")
        their_campaign = Campaign(name="Private", default_language="fr", created_by="x")
        waiting = WaitlistEntry(
            patient_id=their_patient.id,
            centre_id=vaccination.centre_id,
            vaccine_id=vaccination.vaccine_id,
        )
        their_group = VaccinationCampaign(name="Private group", attributes=[])
        db.session.add_all([their_campaign, waiting, their_group])
        db.session.flush()
        their_campaign, their_entry = their_campaign.id, waiting.id
        their_group = their_group.id
        db.session.commit()
    _, our_token = make_key(app, clinic_fr)
    their_objects = {
        "patient_id": their_patient.id,
        "user_id": their_admin.id,
        "key_id": their_key,
        "message_id": their_message,
        "provider": "outbox_sms",
        "token": their_link,
        "appointment_id": their_appointment,
        "conversation_id": their_conversation,
        "attachment_id": their_attachment,
        "communication_id": their_message_in_thread,
        "template_id": their_template,
        "campaign_id": their_campaign,
        "action": "start",
        "series_id": doses[0]["series"],
        "booking_id": doses[1]["id"],
        "dose_id": doses[0]["id"],
        "centre_id": vaccination.centre_id,
        "vaccine_id": vaccination.single_id,  # one no booking depends on: deletable
        "vaccination_campaign_id": their_group,
        "entry_id": their_entry,
    }
    before = snapshot(app, other)
    token = csrf_token(admin_client, "/patients")
    # Patients' own pages are tried by a patient of ours, logged in on their page.
    our_patient = patient_browser(app, clinic_fr, make_patient(app, clinic_fr, first_name="Our"))
    patient_token = csrf_token(our_patient, "/me/")

    attempts = 0
    for rule in app.url_map.iter_rules():
        rule: Rule
        wanted = set(rule.arguments) - {"tenant"}
        if rule.subdomain != "<tenant>" or not wanted or rule.endpoint == "static":
            continue
        missing = wanted - set(their_objects)
        assert not missing, f"{rule.rule}: add an object for {missing} to this test"
        values = {"tenant": "demo"} | {name: their_objects[name] for name in wanted}
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if rule.rule.startswith("/api/"):
                response = admin_client.open(
                    path,
                    method=method,
                    json={"first_name": "Changed"},
                    headers={"Authorization": f"Bearer {our_token}"},
                )
            else:
                patient_page = rule.rule.startswith("/me/") and "token" not in wanted
                response = (our_patient if patient_page else admin_client).open(
                    path,
                    method=method,
                    data={
                        "csrf_token": patient_token if patient_page else token,
                        "first_name": "Changed",
                        "last_name": "Changed",
                        "active": "0",
                        "name": "Changed",
                    },
                )
            # Webhooks authenticate the provider before anything else.
            refused = {401, 404} if rule.rule.startswith("/webhooks/") else {404}
            assert response.status_code in refused, f"{method} {path}: {response.status_code}"
            attempts += 1
    assert attempts >= 7  # patients (view, edit x2), staff, API keys, API patients x2
    assert snapshot(app, other) == before


def test_lists_and_searches_show_only_this_clinic(app, clinic_fr, admin_client):
    other = make_clinic(app, "other")
    make_patient(app, other, first_name="Secret", last_name="Neighbour")
    make_patient(app, clinic_fr, first_name="Our", last_name="Own")
    _, token = make_key(app, clinic_fr)

    page = admin_client.get("/patients?q=")
    assert "Own" in page.text and "Neighbour" not in page.text
    assert "Secret" not in admin_client.get("/patients?q=Neighbour").text
    api = admin_client.get("/api/v1/patients", headers={"Authorization": f"Bearer {token}"})
    assert [p["last_name"] for p in api.json["patients"]] == ["Own"]


def test_an_api_key_works_only_on_its_own_clinic(app, clinic_fr):
    other = make_clinic(app, "other")
    make_patient(app, other)
    _, their_token = make_key(app, other)
    ours = client_for(app, clinic_fr.slug).get(
        "/api/v1/patients", headers={"Authorization": f"Bearer {their_token}"}
    )
    assert ours.status_code == 401
    assert ours.json["error"]["code"] == "unauthorized"


def test_a_login_on_one_clinic_is_no_login_on_another(app, clinic_fr, admin_client):
    make_clinic(app, "other")
    cookie = admin_client.get_cookie("session", domain=f"demo.{SERVER}")
    assert cookie is not None
    # The cookie is host-only: the browser would not send it to another subdomain...
    set_cookie = admin_client.get("/").headers.get("Set-Cookie", "")
    assert "Domain=" not in set_cookie
    # ...and even if it were copied there, it opens nothing.
    thief = client_for(app, "other")
    thief.set_cookie("session", cookie.value, domain=f"other.{SERVER}")
    page = thief.get("/patients")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_session_cookie_flags(app, clinic_fr):
    client = client_for(app, clinic_fr.slug)
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Domain=" not in cookie


def test_an_unknown_subdomain_is_a_404_page(app, clinic_fr):
    page = client_for(app, "nowhere").get("/login")
    assert page.status_code == 404
    assert "<h1>" in page.text


def test_row_level_security_is_a_second_wall(app, clinic_fr):
    """Raw SQL skips the ORM's filter: PostgreSQL's policies still keep clinics apart."""
    other = make_clinic(app, "other")
    make_patient(app, clinic_fr, last_name="Ours")
    make_patient(app, other, last_name="Theirs")
    count = sa.text("SELECT last_name FROM patients")
    with app.app_context():
        with tenant_scope(clinic_fr.id):
            assert db.session.execute(count).scalars().all() == ["Ours"]
            db.session.rollback()
        with tenant_scope(other.id):
            assert db.session.execute(count).scalars().all() == ["Theirs"]
            db.session.rollback()
        # Outside any scope, the policies show nothing at all.
        assert db.session.execute(count).scalars().all() == []
        db.session.rollback()
        with tenant_scope(clinic_fr.id):
            insert = sa.text(
                "INSERT INTO audit_events (tenant_id, id, at, actor, action) "
                "VALUES (:t, gen_random_uuid(), now(), 'x', 'x')"
            )
            try:
                db.session.execute(insert, {"t": other.id})
            except sa.exc.ProgrammingError as exc:
                assert "row-level security" in str(exc)
            else:
                raise AssertionError("an insert for another clinic went through")
            finally:
                db.session.rollback()


def test_orm_queries_outside_any_scope_fail_loudly(app, clinic_fr):
    import pytest

    from tenants.scoping import ScopeError

    with app.app_context(), pytest.raises(ScopeError):
        db.session.scalars(sa.select(Patient)).all()


def test_the_count_of_a_query_counts_this_clinic_only_even_without_rls(app, clinic_fr, monkeypatch):
    """SQLite (the embedded first run) has no row-level security: the ORM's filter must reach
    into a Core ``count()`` over an ORM query too, as pages count their rows that way."""
    from tenants import scoping

    other = make_clinic(app, "other")
    make_patient(app, clinic_fr, last_name="Ours")
    make_patient(app, other, last_name="Theirs")
    monkeypatch.setitem(scoping._app_role, "name", "")  # stay the superuser: no RLS
    with app.app_context(), tenant_scope(clinic_fr.id):
        query = sa.select(Patient).where(Patient.last_name.is_not(None))
        counted = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
        db.session.rollback()
    assert counted == 1


def test_each_clinic_has_its_own_callback_endpoint(app, clinic_fr, admin_client):
    """The callback endpoint has no id: it is the clinic's. Ours, by page or API, is never
    theirs, and removing or rotating ours leaves theirs."""
    other = make_clinic(app, "other", plugins=("fr", "callbacks"))  # on for France: both
    _, their_token = make_key(app, other)
    theirs = client_for(app, other.slug)
    their_key = {"Authorization": f"Bearer {their_token}"}
    url = "https://their-software.example/relais"
    assert theirs.put("/api/v1/callbacks", headers=their_key, json={"url": url}).status_code == 201
    _, our_token = make_key(app, clinic_fr)
    ours = {"Authorization": f"Bearer {our_token}"}
    assert admin_client.get("/api/v1/callbacks", headers=ours).status_code == 404
    assert admin_client.post("/api/v1/callbacks/rotate", headers=ours).status_code == 404
    assert admin_client.delete("/api/v1/callbacks", headers=ours).status_code == 404
    assert url not in admin_client.get("/settings/callbacks/").text
    admin_client.post(
        "/settings/callbacks/remove",
        data={"csrf_token": csrf_token(admin_client, "/settings/callbacks/")},
    )
    assert theirs.get("/api/v1/callbacks", headers=their_key).json["url"] == url
    assert theirs.get("/api/v1/callbacks/deliveries", headers=their_key).json["total"] == 0
