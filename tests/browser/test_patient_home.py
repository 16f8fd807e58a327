"""The patient's home page in Chromium, at a phone's width: they confirm their coming
appointment with its button, see the conversation with an answer they have not read first,
open it, and stop campaigns by e-mail. Every page is audited with axe-core."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core.clinic.models import Patient, User
from core.db import db, utcnow
from core.delivery import access_links
from plugins.features import appointments, messaging
from tenants.scoping import tenant_scope
from tests.browser.test_overflow import PHONE
from tests.plugins.features.messaging_world import make_doctor, make_patient_of
from tests.worlds import make_clinic

pytestmark = pytest.mark.browser

PLUGINS = ("fr", "appointments", "messaging", "outbox")
ANSWER = "Your prescription waits at the pharmacy."


def test_a_patient_confirms_an_appointment_and_reads_an_answer_from_home(
    app, live_server, page, audit, translate
):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    doctor = make_doctor(app, clinic)
    patient = make_patient_of(app, clinic, [doctor], language="en", email="jeanne@example.org")
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        practitioner = db.session.get(User, (clinic.id, doctor.id))
        appointments.create(
            clinic,
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": (utcnow() + timedelta(days=4)).replace(microsecond=0).isoformat(),
                "duration_minutes": 20,
            },
        )
        conversation = messaging.start_request(
            clinic, who, str(doctor.id), "Could you renew my prescription?", []
        )
        messaging.staff_reply(clinic, practitioner, conversation.id, ANSWER, "none")
        token = access_links.make_token(clinic, who)
        db.session.commit()
    base = live_server.url("demo")
    en = translate("en")

    page.set_viewport_size(PHONE)
    page.goto(f"{base}/me/access/{token}")
    audit()
    page.get_by_role("button", name=en("Continue")).click()
    page.wait_for_url(f"{base}/me/")
    audit()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the home page is {width} px wide at 390 px"

    appointments_card = page.get_by_role("region", name=re.compile(en("Your coming appointments")))
    expect(appointments_card).to_contain_text(en("To confirm"))
    confirm = appointments_card.get_by_role("button", name=re.compile("^" + en("Confirm")))
    with page.expect_navigation():
        confirm.click()
    audit()
    expect(page.get_by_role("status")).to_contain_text("is confirmed")
    appointments_card = page.get_by_role("region", name=re.compile(en("Your coming appointments")))
    expect(appointments_card).to_contain_text(en("Confirmed"))
    expect(
        appointments_card.get_by_role("button", name=re.compile("^" + en("Confirm")))
    ).to_have_count(0)

    messages_card = page.get_by_role("region", name=re.compile(en("Your messages")))
    expect(messages_card).to_contain_text(en("New message"))
    messages_card.get_by_role("link", name=re.compile("Practitioner demo")).click()
    audit()
    expect(page.locator(".thread")).to_contain_text(ANSWER)
    page.get_by_role("link", name=en("My page")).click()
    audit()
    messages_card = page.get_by_role("region", name=re.compile(en("Your messages")))
    expect(messages_card).not_to_contain_text(en("New message"))

    consents = page.get_by_role("region", name=en("News and campaigns from your clinic"))
    email_line = consents.get_by_role("listitem").filter(has_text=en("By e-mail"))
    expect(email_line).to_contain_text(en("You do not receive them"))
    with page.expect_navigation():
        email_line.get_by_role("button", name=re.compile("^" + en("Receive them"))).click()
    audit()
    consents = page.get_by_role("region", name=en("News and campaigns from your clinic"))
    expect(consents.get_by_role("listitem").filter(has_text=en("By e-mail"))).to_contain_text(
        en("You receive them")
    )
