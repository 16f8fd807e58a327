"""Secure messaging in Chromium: a patient writes to their practitioner with a file (a file
that is not a PDF/JPEG/PNG first, refused next to its field), the practitioner answers from
the inbox, the patient reads the answer, and the practitioner sees ✓✓. Every page is audited
with axe-core; the patient writes with the keyboard."""

import re

import pytest
from playwright.sync_api import expect

from core.clinic.models import Patient
from core.db import db
from core.delivery import access_links
from tenants.scoping import tenant_scope
from tests.browser.conftest import DOCUMENT_ID, TIMEOUT_MS, Audit
from tests.browser.test_clinic import expect_invalid
from tests.plugins.features.messaging_world import EXE, PDF, PLUGINS, make_doctor, make_patient_of
from tests.worlds import make_clinic

pytestmark = pytest.mark.browser

REQUEST = "Could you renew my prescription, please?"
ANSWER = "Done: it waits for you at the pharmacy."


def test_a_patient_writes_with_a_file_and_the_practitioner_answers(
    app, live_server, browser, page, audit, translate, log_in, tmp_path
):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    doctor = make_doctor(app, clinic)
    patient = make_patient_of(app, clinic, [doctor], language="en")
    with app.app_context(), tenant_scope(clinic.id):
        token = access_links.make_token(clinic, db.session.get(Patient, (clinic.id, patient.id)))
    base = live_server.url("demo")
    en, fr = translate("en"), translate("fr")

    # The patient, in a browser of their own, in through the access link.
    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(DOCUMENT_ID)
    patient_page = context.new_page()
    patient_audit = Audit(patient_page)
    try:
        patient_page.goto(f"{base}/me/access/{token}")
        patient_audit()
        patient_page.get_by_role("button", name=en("Continue")).click()
        patient_page.wait_for_url(f"{base}/me/")
        patient_audit()
        see_all = f"{en('See all')} ({en('Your messages')})"  # the home page's card
        patient_page.get_by_role("link", name=see_all).click()
        patient_audit()
        expect(patient_page.locator("#not-emergency")).to_contain_text("112")
        body = patient_page.get_by_role("textbox", name=en("Your message"))
        body.focus()
        patient_page.keyboard.type(REQUEST)
        program = tmp_path / "scan.pdf"
        program.write_bytes(EXE)
        files = patient_page.get_by_label(en("Files (optional)"))
        files.set_input_files(program)
        with patient_page.expect_navigation():
            patient_page.get_by_role("button", name=en("Send")).click()
        patient_audit()
        files = patient_page.get_by_label(en("Files (optional)"))
        refused = en("%(name)s is not a PDF, JPEG or PNG file.", name="scan.pdf")
        expect_invalid(files, re.compile("^" + re.escape(refused)))  # then the field's help
        expect(patient_page.get_by_role("textbox", name=en("Your message"))).to_have_value(REQUEST)
        scan = tmp_path / "prescription.pdf"
        scan.write_bytes(PDF)
        files.set_input_files(scan)
        with patient_page.expect_navigation():
            patient_page.get_by_role("button", name=en("Send")).click()
        patient_audit()
        expect(patient_page.get_by_role("status")).to_have_text(en("Your message is sent."))
        expect(patient_page.locator(".thread")).to_contain_text(REQUEST)
        conversation_url = patient_page.url

        # The practitioner, in French (a French clinic), answers from the inbox.
        log_in(base, doctor, "fr")
        inbox = fr("Inbox (%(unread)d unread, %(unhandled)d unhandled)", unread=1, unhandled=1)
        page.get_by_role("link", name=inbox).click()
        audit()
        page.get_by_role("link", name="Jeanne Durand").wait_for()
        page.locator("table.inbox tbody tr a").first.click()
        audit()
        expect(page.locator(".thread")).to_contain_text(REQUEST)
        expect(page.get_by_role("link", name="prescription.pdf")).to_be_visible()
        page.get_by_role("textbox", name=fr("Your answer")).fill(ANSWER)
        with page.expect_navigation():
            page.get_by_role("button", name=fr("Send the answer")).click()
        audit()
        expect(page.locator(".thread")).to_contain_text(fr("Not read yet"))

        patient_page.goto(conversation_url)
        patient_audit()
        expect(patient_page.locator(".thread")).to_contain_text(ANSWER)
        expect(patient_page.locator(".thread")).not_to_contain_text("✓✓")

        page.reload()
        audit()
        expect(page.locator(".thread .read")).to_contain_text(fr("Read by the patient"))
        with page.expect_navigation():
            page.get_by_role("button", name=fr("Mark handled")).click()
        audit()
        expect(page.get_by_role("status")).to_have_text(
            fr("Marked handled: the conversation is closed.")
        )
        assert patient_audit.unchecked() is None
    finally:
        context.close()
