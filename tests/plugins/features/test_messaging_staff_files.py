"""Staff attach files to their answers, checked and encrypted as the patient's are: the
patient downloads them; a renamed program is refused naming it with nothing stored; the file
of an answer scheduled for later stays out of the patient's reach until then."""

import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db, utcnow
from plugins.features.messaging.models import Attachment, ThreadMessage
from tenants.scoping import tenant_scope
from tests.plugins.features.messaging_world import (
    EXE,
    PDF,
    PLUGINS,
    conversation_id_of,
    make_doctor,
    make_patient_of,
    patient_browser,
    post,
    staff_browser,
)
from tests.worlds import make_clinic

ORDONNANCE = PDF + b"% Levothyrox 75 microgrammes\n"


@pytest.fixture
def world(app):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    doctor = make_doctor(app, clinic, "dr.martin")
    patient = make_patient_of(app, clinic, [doctor], language="en")
    me = patient_browser(app, clinic, patient)
    sent = post(me, "/me/messages/", practitioner=str(doctor.id), body="Mon ordonnance ?")
    return clinic, me, staff_browser(app, clinic, doctor), conversation_id_of(sent)


def answer(staff, conversation, name, data, **form):
    path = f"/inbox/{conversation}"
    return post(
        staff,
        f"{path}/reply",
        form_page=path,
        files=[(io.BytesIO(data), name)],
        body="Voici votre ordonnance.",
        reply_mode="until_closed",
        **form,
    )


def stored(app, clinic) -> tuple[int, int]:
    with app.app_context(), tenant_scope(clinic.id):
        return tuple(
            db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (ThreadMessage, Attachment)
        )


def test_the_patient_downloads_the_staffs_file_stored_encrypted(app, world):
    clinic, me, staff, conversation = world
    assert 'enctype="multipart/form-data"' in staff.get(f"/inbox/{conversation}").text
    assert answer(staff, conversation, "ordonnance.pdf", ORDONNANCE).status_code == 303
    thread = me.get(f"/me/messages/{conversation}").text
    assert "ordonnance.pdf" in thread
    link = re.search(rf"/me/messages/{conversation}/files/[0-9a-f-]{{36}}", thread).group(0)
    file = me.get(link)
    assert file.data == ORDONNANCE and file.mimetype == "application/pdf"
    with app.app_context(), tenant_scope(clinic.id):
        raw = db.session.execute(sa.text("SELECT filename, data FROM messaging_attachments")).one()
    assert "ordonnance" not in raw[0] and b"Levothyrox" not in bytes(raw[1])


def test_a_renamed_program_is_refused_naming_it_and_nothing_is_stored(app, world):
    clinic, _me, staff, conversation = world
    before = stored(app, clinic)
    refused = answer(staff, conversation, "ordonnance.pdf", EXE)
    assert refused.status_code == 422
    assert "ordonnance.pdf is not a PDF, JPEG or PNG file." in refused.text
    assert 'id="e-attachments"' in refused.text
    assert stored(app, clinic) == before


def test_a_scheduled_answers_file_waits_for_its_time(app, world):
    clinic, me, staff, conversation = world
    soon = (utcnow() + timedelta(minutes=10)).astimezone(ZoneInfo(clinic.timezone))
    sent = answer(staff, conversation, "plan.pdf", PDF, send_at=soon.strftime("%Y-%m-%dT%H:%M"))
    assert sent.status_code == 303
    with app.app_context(), tenant_scope(clinic.id):
        attachment_id = db.session.scalar(sa.select(Attachment.id))
    path = f"/me/messages/{conversation}/files/{attachment_id}"
    assert "plan.pdf" not in me.get(f"/me/messages/{conversation}").text
    assert me.get(path).status_code == 404
    with time_machine.travel(utcnow() + timedelta(minutes=15), tick=False):
        assert me.get(path).data == PDF
