"""Messaging end to end with a real ``relais worker``: the staff's answer tells the patient
through the delivery pipeline (purpose ``messaging``), in the patient's language, by their
best channel, and the notification that reaches the outbox channel holds no content."""

import io
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from core.db import db, utcnow
from core.delivery.models import Message, MessageStatus
from plugins.features.messaging.models import ThreadMessage
from tenants.scoping import tenant_scope
from tests.plugins.features.messaging_world import (
    PDF,
    PLUGINS,
    conversation_id_of,
    deliveries,
    make_doctor,
    make_patient_of,
    patient_browser,
    post,
    staff_browser,
)
from tests.worlds import make_clinic, wait_until

ANSWER = "Votre ordonnance de Levothyrox est prête."


def test_an_answer_reaches_the_patient_by_sms_in_their_language_without_its_content(app, worker):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    doctor = make_doctor(app, clinic)
    french = make_patient_of(app, clinic, [doctor], language="fr")
    english = make_patient_of(
        app,
        clinic,
        [doctor],
        first_name="John",
        phone="0698765432",
        email="john@example.org",
        language="en",
    )
    staff = staff_browser(app, clinic, doctor)
    for patient in (french, english):
        me = patient_browser(app, clinic, patient)
        sent = post(
            me,
            "/me/messages/",
            practitioner=str(doctor.id),
            body="Pouvez-vous renouveler mon ordonnance ?",
            files=[(io.BytesIO(PDF), "ordonnance.pdf")],
        )
        conversation = conversation_id_of(sent)
        path = f"/inbox/{conversation}"
        answered = post(staff, f"{path}/reply", form_page=path, body=ANSWER)
        assert answered.status_code == 303

    arrived = wait_until(lambda: len(deliveries(app, clinic)) == 2 and deliveries(app, clinic))
    by_recipient = {recipient: (channel, text) for channel, recipient, text in arrived}
    channel, text = by_recipient["+33612345678"]
    assert channel == "sms"
    assert text == (
        "Vous avez un nouveau message de Clinic demo. Lisez-le sur votre page\u00a0: "
        "https://demo.relais.test/me/messages/"
    )
    channel, text = by_recipient["john@example.org"]  # e-mail first when they have one
    assert channel == "email"
    assert text.startswith("You have a new message from Clinic demo.")
    assert all(ANSWER not in t and "Levothyrox" not in t for _c, _r, t in arrived)
    with app.app_context(), tenant_scope(clinic.id):
        purposes = db.session.scalars(sa.select(Message.purpose)).all()
    assert purposes == ["messaging", "messaging"]


def test_a_scheduled_answer_shows_and_is_told_at_its_time(app, worker):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    doctor = make_doctor(app, clinic)
    patient = make_patient_of(app, clinic, [doctor], language="en")
    me = patient_browser(app, clinic, patient)
    conversation = conversation_id_of(
        post(me, "/me/messages/", practitioner=str(doctor.id), body="Results?")
    )
    staff = staff_browser(app, clinic, doctor)
    path = f"/inbox/{conversation}"
    past = post(staff, f"{path}/reply", path, body=ANSWER, send_at="2020-01-01T09:00")
    assert past.status_code == 422 and "Choose a time to come, within a year." in past.text
    soon = datetime.now(ZoneInfo(clinic.timezone)) + timedelta(minutes=5)
    at = soon.strftime("%Y-%m-%dT%H:%M")  # to the minute, as browsers send
    scheduled = post(staff, f"{path}/reply", path, body=ANSWER, send_at=at)
    assert scheduled.status_code == 303
    assert "Scheduled for" in staff.get(path).text
    time.sleep(1.5)  # the worker's sweeper ticks every second: nothing leaves early
    assert ANSWER not in me.get(f"/me/messages/{conversation}").text  # not yet
    assert deliveries(app, clinic) == []

    # Its time comes: the stored times move into the past rather than the test waiting.
    with app.app_context(), tenant_scope(clinic.id):
        past = utcnow() - timedelta(seconds=1)
        later = sa.update(ThreadMessage).where(ThreadMessage.visible_at.is_not(None))
        db.session.execute(later.values(visible_at=past))
        waiting = sa.update(Message).where(Message.status == MessageStatus.SCHEDULED)
        db.session.execute(waiting.values(not_before=past, next_attempt_at=past))
        db.session.commit()
    [(channel, _to, text)] = wait_until(lambda: deliveries(app, clinic))
    assert channel == "sms" and ANSWER not in text
    assert ANSWER in me.get(f"/me/messages/{conversation}").text  # its time came
