"""Messaging through its pages: a patient's request with a file, the staff's answer, the read
receipt only staff see, marking handled; the rules patients are told in plain words; bad
input refused naming the field with nothing stored; bodies and files encrypted at rest."""

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.clinic import settings
from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery.models import Message
from core.errors import ValidationError
from plugins.features import appointments
from plugins.features.messaging.models import Allowed, Attachment, Conversation, ThreadMessage
from tenants import provisioning
from tenants.models import Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.plugins.features.messaging_world import (
    EXE,
    PDF,
    PLUGINS,
    PNG,
    audit_actions,
    conversation_id_of,
    make_doctor,
    make_patient_of,
    patient_browser,
    post,
    staff_browser,
)
from tests.worlds import make_clinic, make_staff

OPENED = datetime(2026, 11, 30, 9, tzinfo=UTC)
BODY = "Bonjour docteur, pouvez-vous renouveler mon ordonnance de Levothyrox ?"


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


@pytest.fixture
def doctor(app, clinic):
    return make_doctor(app, clinic, "dr.martin")


@pytest.fixture
def patient(app, clinic, doctor):
    return make_patient_of(app, clinic, [doctor], language="en")  # pages in English


@pytest.fixture
def me(app, clinic, patient):
    return patient_browser(app, clinic, patient)


@pytest.fixture
def staff(app, clinic, doctor):
    return staff_browser(app, clinic, doctor)


def write(me, doctor, body=BODY, files=()):
    return post(me, "/me/messages/", practitioner=str(doctor.id), body=body, files=files)


def stored(app, clinic) -> tuple[int, int, int]:
    with app.app_context(), tenant_scope(clinic.id):
        return tuple(
            db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Conversation, ThreadMessage, Attachment)
        )


def test_the_page_says_messaging_is_not_for_emergencies_with_the_countrys_numbers(me):
    page = me.get("/me/messages/")
    assert page.status_code == 200
    assert "Messaging is not for emergencies." in page.text
    assert "<strong>15</strong>" in page.text and "<strong>112</strong>" in page.text
    assert "/me/messages/" in me.get("/me/").text  # linked from the patient's home


def test_a_french_patient_reads_the_page_in_french(app, clinic, doctor):
    french = make_patient_of(app, clinic, [doctor], first_name="Louise", phone="0611223344")
    page = patient_browser(app, clinic, french).get("/me/messages/")
    assert "La messagerie n'est pas faite pour les urgences." in page.text
    assert "appelez le <strong>15</strong> ou le <strong>112</strong>" in page.text
    assert "Écrire une nouvelle demande" in page.text


def test_a_request_with_a_file_an_answer_the_read_receipt_and_handled(
    app, clinic, doctor, me, staff
):
    sent = write(me, doctor, files=[(io.BytesIO(PDF), "ordonnance.pdf")])
    assert sent.status_code == 303, sent.text
    conversation = conversation_id_of(sent)

    inbox = staff.get("/inbox/")
    assert "Inbox (1 unread, 1 unhandled)" in inbox.text  # the counters, in the navigation
    assert "Jeanne Durand" in inbox.text and BODY not in inbox.text  # no content listed

    opened = staff.get(f"/inbox/{conversation}")
    assert BODY in opened.text and "ordonnance.pdf" in opened.text
    assert ("messaging.read", conversation) in audit_actions(app, clinic)
    assert "Inbox (1 unhandled" not in staff.get("/inbox/").text  # read: no longer unread
    with app.app_context(), tenant_scope(clinic.id):
        attachment = db.session.scalar(sa.select(Attachment.id))
    file = staff.get(f"/inbox/{conversation}/files/{attachment}")
    assert file.data == PDF and file.mimetype == "application/pdf"

    answered = post(
        staff,
        f"/inbox/{conversation}/reply",
        form_page=f"/inbox/{conversation}",
        body="C'est fait, passez à la pharmacie.",
        reply_mode="until_closed",
    )
    assert answered.status_code == 303
    assert "Not read yet" in staff.get(f"/inbox/{conversation}").text

    mine = me.get(f"/me/messages/{conversation}")
    assert "C&#39;est fait, passez à la pharmacie." in mine.text
    assert "Read" not in mine.text and "✓✓" not in mine.text  # staff reads are not shown
    assert "✓✓" in staff.get(f"/inbox/{conversation}").text  # the patient read it

    done = post(staff, f"/inbox/{conversation}/handled", form_page=f"/inbox/{conversation}")
    assert done.status_code == 303
    assert "No conversation here." in staff.get("/inbox/?show=unhandled").text
    closed = me.get(f"/me/messages/{conversation}")
    assert "This conversation is closed." in closed.text
    refused = post(me, f"/me/messages/{conversation}", body="Merci !")
    assert refused.status_code == 422 and "This conversation is closed." in refused.text
    assert stored(app, clinic) == (1, 2, 1)


def test_bodies_and_files_are_encrypted_at_rest(app, clinic, doctor, me):
    write(me, doctor, files=[(io.BytesIO(PNG), "photo.png")])
    with app.app_context(), tenant_scope(clinic.id):
        raw = (
            db.session.execute(
                sa.text(
                    "SELECT body FROM messaging_messages"
                    " UNION ALL SELECT filename FROM messaging_attachments"
                )
            )
            .scalars()
            .all()
        )
        data = db.session.execute(sa.text("SELECT data FROM messaging_attachments")).scalar()
    assert raw and not any("Levothyrox" in r or "photo" in r for r in raw)
    assert PNG not in bytes(data) and b"PNG" not in bytes(data)


@pytest.mark.parametrize(
    ("form", "files", "field", "message"),
    [
        ({"body": "  "}, (), "body", "Write your message."),
        ({"body": "x" * 5001}, (), "body", "at most 5000 characters"),
        ({}, [(io.BytesIO(EXE), "scan.pdf")], "attachments", "scan.pdf is not a PDF, JPEG or PNG"),
        ({}, [(io.BytesIO(b""), "empty.pdf")], "attachments", "empty.pdf is empty."),
        (
            {},
            [(io.BytesIO(PDF + b"0" * 200_000), "big.pdf")],
            "attachments",
            "big.pdf is too large: at most 0.1 MB per file.",
        ),
        ({"practitioner": "nobody"}, (), "practitioner", "Choose a practitioner."),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    app, clinic, doctor, me, form, files, field, message
):
    with app.app_context(), tenant_scope(clinic.id):  # small, for the test client's sake
        settings.save_clinic(clinic, "messaging", {"max_attachment_mb": "0,1"})
        db.session.commit()
    data = {"practitioner": str(doctor.id), "body": BODY, **form}
    page = post(me, "/me/messages/", files=files, **data)
    assert page.status_code == 422
    assert message in page.text
    assert f'id="e-{field}"' in page.text or 'role="alert"' in page.text
    assert stored(app, clinic) == (0, 0, 0)


def test_a_practitioner_one_is_not_a_patient_of_is_refused_with_the_reason(app, clinic, doctor, me):
    other = make_doctor(app, clinic, "dr.other")
    page = write(me, other)
    assert page.status_code == 422
    assert "you are a patient of" in page.text and "Practitioner demo" in page.text
    assert stored(app, clinic) == (0, 0, 0)


def test_a_blocked_patient_is_told_in_plain_words_then_unblocked(app, clinic, doctor, me, staff):
    conversation = conversation_id_of(write(me, doctor))
    path = f"/inbox/{conversation}"
    assert post(staff, f"{path}/block", form_page=path, blocked="yes").status_code == 303
    assert "This patient cannot write to" in staff.get(path).text
    page = me.get("/me/messages/")
    assert "no longer takes messages from you" in page.text
    assert write(me, doctor).status_code == 422
    reply = post(me, f"/me/messages/{conversation}", body="Et alors ?")
    assert reply.status_code == 422
    assert "This practitioner no longer takes messages from you." in reply.text
    assert stored(app, clinic)[1] == 1

    assert post(staff, f"{path}/block", form_page=path, blocked="no").status_code == 303
    assert post(me, f"/me/messages/{conversation}", body="Merci").status_code == 303


def test_a_closed_inbox_gives_its_automatic_answer_until_reopened(app, clinic, doctor, me, staff):
    empty = post(staff, "/inbox/closed", form_page="/inbox/", action="close", auto_answer=" ")
    assert empty.status_code == 422 and "Write the answer patients will read." in empty.text
    closed = post(
        staff,
        "/inbox/closed",
        form_page="/inbox/",
        action="close",
        auto_answer="En congés jusqu'au 2 janvier ; le Dr Morel assure les urgences.",
    )
    assert closed.status_code == 303
    page = me.get("/me/messages/")
    assert "inbox is closed for now. En congés jusqu&#39;au 2 janvier" in page.text
    refused = write(me, doctor)
    assert refused.status_code == 422 and "inbox is closed" in refused.text
    assert stored(app, clinic) == (0, 0, 0)

    post(staff, "/inbox/closed", form_page="/inbox/", action="reopen")
    assert write(me, doctor).status_code == 303


def test_one_new_request_a_day_after_an_answer(app, clinic, doctor, me, staff):
    conversation = conversation_id_of(write(me, doctor))
    path = f"/inbox/{conversation}"
    post(staff, f"{path}/reply", form_page=path, body="Voilà.", reply_mode="none")
    refused = write(me, doctor, body="Une autre question")
    assert refused.status_code == 422
    assert "You received an answer today: you can write a new request tomorrow." in refused.text
    assert "The clinic did not ask for a reply" in me.get(f"/me/messages/{conversation}").text

    with app.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "messaging", {"one_request_a_day": "no"})
        db.session.commit()
    assert write(me, doctor, body="Une autre question").status_code == 303


def test_staff_write_first_and_choose_whether_the_patient_may_reply(
    app, clinic, doctor, patient, me, staff
):
    path = f"/inbox/new/{patient.id}"
    assert f'href="{path}"' in staff.get(f"/patients/{patient.id}").text  # relais_patient_actions
    empty = post(staff, path, body="", reply_mode="once")
    assert empty.status_code == 422 and "Write your message." in empty.text
    sent = post(staff, path, body="Vos résultats sont normaux.", reply_mode="once")
    assert sent.status_code == 303
    conversation = sent.headers["Location"].rsplit("/", 1)[1]
    assert "Vos résultats sont normaux." in me.get(f"/me/messages/{conversation}").text
    assert post(me, f"/me/messages/{conversation}", body="Merci !").status_code == 303
    # "once": one reply, then it waits for the staff again.
    again = post(me, f"/me/messages/{conversation}", body="Et encore…")
    assert again.status_code == 422
    assert "Unhandled" in staff.get("/inbox/?show=unhandled").text


def test_another_patients_conversation_is_not_found(app, clinic, doctor, me):
    conversation = conversation_id_of(write(me, doctor))
    someone = make_patient_of(app, clinic, [doctor], first_name="Paul", phone="0698765432")
    other = patient_browser(app, clinic, someone)
    assert other.get(f"/me/messages/{conversation}").status_code == 404
    assert post(other, f"/me/messages/{conversation}", "/me/messages/", body="x").status_code == 404


def test_the_inbox_pages_by_keyset_newest_first_in_one_query_a_page(
    app, clinic, doctor, patient, staff
):
    other_doctor = make_doctor(app, clinic, "dr.other")
    others = make_patient_of(app, clinic, [other_doctor], first_name="Paul", phone="0698765432")
    with app.app_context(), tenant_scope(clinic.id):
        for n in range(30):  # 30 requests, a minute apart; every third to the other doctor
            who, to = (others, other_doctor) if n % 3 == 0 else (patient, doctor)
            conversation = Conversation(
                patient_id=who.id,
                practitioner_id=to.id,
                started_by="patient",
                reply_mode="until_closed",
                awaiting_staff=n % 2 == 0,
                unread_by_staff=n % 2 == 0,
                last_message_at=OPENED + timedelta(minutes=n),
            )
            db.session.add(conversation)
        db.session.commit()

    statements = []
    with app.app_context():
        engine = db.engine
    listen = sa.event.listens_for(engine, "before_cursor_execute")

    @listen
    def count(conn, cursor, statement, *args):
        if "messaging_conversations" in statement and "count" not in statement:
            statements.append(statement)

    try:
        first = staff.get("/inbox/")
        assert len(statements) == 1  # the page's rows, with patients' and practitioners' names
        times = re.findall(r'<time datetime="([^"]+)"', first.text)
        assert len(times) == 25 and times == sorted(times, reverse=True)
        assert times[0] == (OPENED + timedelta(minutes=29)).isoformat()
        after = re.search(r'href="(/inbox/\?[^"]*after=[^"]+)"', first.text).group(1)
        second = staff.get(after.replace("&amp;", "&"))
        assert len(statements) == 2
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    rest = re.findall(r'<time datetime="([^"]+)"', second.text)
    assert len(rest) == 5 and rest[-1] == OPENED.isoformat()
    assert "Older conversations" not in second.text

    unhandled = staff.get("/inbox/?show=unhandled").text
    assert len(re.findall(r"<time datetime", unhandled)) == 15
    mine = staff.get("/inbox/?show=mine").text
    assert len(re.findall(r"<time datetime", mine)) == 20 and "Paul" not in mine
    theirs = staff.get(f"/inbox/?patient={others.id}").text
    assert len(re.findall(r"<time datetime", theirs)) == 10 and "Jeanne" not in theirs
    # The counters: a practitioner's own conversations (a secretary's: the whole clinic's).
    assert "Inbox (10 unread, 10 unhandled)" in unhandled
    bad = staff.get("/inbox/?after=not-a-cursor")
    assert bad.status_code == 422 and "This page link is not valid" in bad.text


def test_templates_starred_first_filled_in_when_used_changed_and_deleted(
    app, clinic, doctor, me, staff
):
    conversation = conversation_id_of(write(me, doctor))
    bad = post(staff, "/inbox/templates", title="Broken", body="Hello {{ patient")
    assert bad.status_code == 422 and "cannot be rendered" in bad.text
    assert post(staff, "/inbox/templates", title="", body="x").status_code == 422
    for title, body in (
        ("Prescription", "Hello {{ patient }}, your prescription is ready. {{ practitioner }}"),
        ("Appointment", "Please book an appointment at {{ clinic }}."),
    ):
        assert post(staff, "/inbox/templates", title=title, body=body).status_code == 303
    listing = staff.get("/inbox/templates").text
    assert listing.index("Appointment") < listing.index("Prescription")  # by title
    prescription = re.search(r'/inbox/templates/([0-9a-f-]{36})">Prescription', listing).group(1)
    path = f"/inbox/templates/{prescription}"
    assert post(staff, path, "/inbox/templates", action="star").status_code == 303
    listing = staff.get("/inbox/templates").text
    assert listing.index("Prescription") < listing.index("Appointment")  # starred first

    used = staff.get(f"/inbox/{conversation}?template={prescription}")
    assert (
        ">Hello Jeanne Durand, your prescription is ready. Practitioner demo</textarea>"
        in used.text
    )
    changed = post(staff, path, title="Prescription", body="Ready, {{ patient }}.", starred="yes")
    assert changed.status_code == 303
    used = staff.get(f"/inbox/{conversation}?template={prescription}")
    assert ">Ready, Jeanne Durand.</textarea>" in used.text
    assert post(staff, path, "/inbox/templates", action="delete").status_code == 303
    assert staff.get(path).status_code == 404
    # Another staff member's templates are theirs alone.
    secretary = staff_browser(app, clinic, make_staff(app, clinic, "secretary"))
    other = re.search(r"/inbox/templates/([0-9a-f-]{36})", staff.get("/inbox/templates").text)
    assert secretary.get(f"/inbox/templates/{other.group(1)}").status_code == 404


def test_a_clinic_may_take_new_requests_only_from_patients_with_a_follow_up(
    app, clinic, doctor, patient, me
):
    with app.app_context(), tenant_scope(clinic.id), pytest.raises(ValidationError) as refused:
        settings.save_clinic(clinic, "messaging", {"first_writers": "pregnancy"})
    assert refused.value.field == "first_writers"  # not a follow-up: named, nothing stored
    with app.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(
            clinic, "messaging", {"first_writers": "chronic_disease, pregnancy_follow_up"}
        )
        db.session.commit()
    page = write(me, doctor)
    assert page.status_code == 422
    assert "takes new requests only from patients with a follow-up" in page.text
    assert stored(app, clinic) == (0, 0, 0)

    followed = make_patient_of(
        app, clinic, [doctor], first_name="Lina", phone="0611223344", language="en"
    )
    with app.app_context(), tenant_scope(clinic.id):
        db.session.get(Patient, (clinic.id, followed.id)).attributes = ["chronic_disease"]
        db.session.commit()
    assert write(patient_browser(app, clinic, followed), doctor).status_code == 303


def test_a_practitioner_lets_a_patient_without_the_follow_up_write_first(
    app, clinic, doctor, patient, me, staff
):
    with app.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, "messaging", {"first_writers": "allowed"})  # only those
        db.session.commit()
    assert write(me, doctor).status_code == 422
    page = f"/inbox/new/{patient.id}"
    assert "Allow to write first" in staff.get(page).text
    allowed = post(staff, f"{page}/allowed", page, practitioner=str(doctor.id), allowed="yes")
    assert allowed.status_code == 303
    assert "may write first to" in staff.get(page).text
    assert write(me, doctor).status_code == 303  # now they may
    post(staff, f"{page}/allowed", page, practitioner=str(doctor.id), allowed="no")
    assert write(me, doctor, body="Encore une question.").status_code == 422
    assert ("messaging.allowed", str(patient.id)) in audit_actions(app, clinic)
    # Only for the practitioners one answers for: another's id is refused, nothing stored.
    other = make_doctor(app, clinic, "dr.other")
    post(staff, f"{page}/allowed", page, practitioner=str(other.id), allowed="yes")
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Allowed)) == 0


def test_staff_delete_a_message_then_the_conversation_content_purged_and_audited(
    app, clinic, doctor, me, staff
):
    sent = write(me, doctor, files=[(io.BytesIO(PDF), "ordonnance.pdf")])
    conversation = conversation_id_of(sent)
    path = f"/inbox/{conversation}"
    post(staff, f"{path}/reply", path, body="Voilà votre ordonnance.")
    with app.app_context(), tenant_scope(clinic.id):
        first, _answer = db.session.scalars(
            sa.select(ThreadMessage.id).order_by(ThreadMessage.created_at)
        ).all()
    assert post(staff, f"{path}/delete", path, thread_message_id=str(first)).status_code == 303
    mine = me.get(f"/me/messages/{conversation}").text
    assert "Message deleted." in mine and BODY not in mine and "ordonnance.pdf" not in mine
    assert "Voilà votre ordonnance." in mine
    assert stored(app, clinic) == (1, 2, 0)  # the file is gone, the rows stay
    with app.app_context(), tenant_scope(clinic.id):
        bodies = db.session.scalars(sa.select(ThreadMessage.body).order_by("created_at")).all()
    assert bodies == ["", "Voilà votre ordonnance."]
    assert ("messaging.message_deleted", str(first)) in audit_actions(app, clinic)
    missing = post(staff, f"{path}/delete", path, thread_message_id="nope")
    assert missing.status_code == 404

    assert post(staff, f"{path}/delete", path).status_code == 303
    assert "Voilà votre ordonnance." not in me.get(f"/me/messages/{conversation}").text
    assert ("messaging.conversation_deleted", conversation) in audit_actions(app, clinic)
    assert "This conversation is closed." in me.get(f"/me/messages/{conversation}").text
    with app.app_context(), tenant_scope(clinic.id):
        assert set(db.session.scalars(sa.select(ThreadMessage.body))) == {""}


def test_a_follow_up_message_after_an_appointment_type_marked_done(
    app, clinic, doctor, patient, me
):
    with app.app_context(), system_scope():
        provisioning.set_country_plugin("FR", "appointments", True)
        db.session.commit()
    with app.test_request_context(), tenant_scope(clinic.id):
        tenant = db.session.get(Tenant, clinic.id)
        chosen = {"after_appointment_types": "Vaccination", "after_appointment_hours": "24"}
        settings.save_clinic(tenant, "messaging", chosen)
        starts = utcnow() + timedelta(hours=1)
        booked = {
            "patient_id": patient.id,
            "practitioner_id": doctor.id,
            "starts_at": starts,
            "duration_minutes": 15,
        }
        vaccination = appointments.create(tenant, {**booked, "type": "vaccination"})
        consultation = appointments.create(
            tenant, {**booked, "starts_at": starts + timedelta(hours=1), "type": "consultation"}
        )
        appointments.set_status(tenant, vaccination, "done")
        appointments.set_status(tenant, consultation, "done")  # not a chosen type
        appointments.set_status(tenant, vaccination, "booked")
        appointments.set_status(tenant, vaccination, "done")  # again: still one message
        db.session.commit()
        ends_at = vaccination.ends_at
        [(text, visible_at)] = db.session.execute(
            sa.select(ThreadMessage.body, ThreadMessage.visible_at)
        ).all()
        [(purpose, not_before)] = db.session.execute(
            sa.select(Message.purpose, Message.not_before)
        ).all()
    assert text == "How are you after your appointment? You can answer this message."
    assert visible_at == not_before == ends_at + timedelta(hours=24)
    assert purpose == "messaging"
    assert "Your conversations" not in me.get("/me/messages/").text  # not before its time


def test_the_home_page_counts_the_requests_to_handle(app, clinic, doctor, me, staff):
    assert "No message waits for you." in staff.get("/").text  # relais_dashboard_items
    conversation = conversation_id_of(write(me, doctor))
    home = staff.get("/").text
    assert "Patients&#39; messages to handle" in home or "Patients' messages to handle" in home
    assert f"/inbox/{conversation}" in home and "Jeanne Durand" in home
    post(staff, f"/inbox/{conversation}/handled", f"/inbox/{conversation}")
    assert "No message waits for you." in staff.get("/").text
