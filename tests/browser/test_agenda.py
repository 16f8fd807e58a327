"""A secretary books an appointment in the agenda and finds it in the week, in Chromium."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.browser.test_clinic import expect_invalid, submit
from tests.worlds import make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser


def test_a_secretary_books_an_appointment_and_sees_it_in_the_week(
    app, live_server, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo", plugins=("fr", "appointments"))
    make_staff(app, clinic, "practitioner", email="dr.martin@demo.example")
    make_patient(app, clinic, first_name="Jeanne", last_name="Durand")
    make_patient(app, clinic, first_name="Lucas", last_name="Bernard")
    base = live_server.url("demo")
    _ = translate("fr")  # a French clinic: its pages are in French
    log_in(base, make_staff(app, clinic, "secretary"), locale="fr")

    page.get_by_role("navigation", name=_("Main")).get_by_role("link", name=_("Agenda")).click()
    page.wait_for_url(re.compile(re.escape(base + "/agenda")))
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Agenda"))
    agenda = page.get_by_role("table")
    expect(agenda.get_by_role("rowheader")).to_have_text(["Practitioner demo"])

    # Find the patient, then book for next week at 10:30 (Paris time); the start is forgotten.
    booking = page.get_by_role("region", name=_("New appointment"))
    booking.get_by_role("searchbox", name=_("Find a patient by name, phone or e-mail")).fill("dur")
    submit(page, booking.get_by_role("button", name=_("Find")))
    audit()
    booking = page.get_by_role("region", name=_("New appointment"))
    patient = booking.get_by_role("combobox", name=_("Patient"), exact=True)
    expect(patient.locator("option")).to_have_text([_("Choose a patient"), "Durand Jeanne"])
    patient.select_option(label="Durand Jeanne")
    practitioner = booking.get_by_role("combobox", name=_("Practitioner"), exact=True)
    practitioner.select_option(label="Practitioner demo")
    day = datetime.now(ZoneInfo("Europe/Paris")).date() + timedelta(days=7)
    booking.get_by_label(_("Date")).fill(day.isoformat())  # "Date *"
    booking.get_by_role("combobox", name=_("Duration")).select_option(
        label=_("%(num)d minute", "%(num)d minutes", 20)
    )
    booking.get_by_role("textbox", name=_("Reason")).fill("Contrôle tension")
    submit(page, booking.get_by_role("button", name=_("Book")))

    audit()
    booking = page.get_by_role("region", name=_("New appointment"))
    start = booking.get_by_label(_("Start"))
    expect_invalid(start, _("Use the form HH:MM."))
    expect(booking.get_by_role("combobox", name=_("Patient"), exact=True)).to_have_value(
        re.compile("[0-9a-f-]{36}")
    )  # what was chosen stays
    start.fill("10:30")
    submit(page, booking.get_by_role("button", name=_("Book")))

    page.wait_for_url(re.compile(re.escape(base + "/agenda") + ".*date=" + day.isoformat()))
    audit()
    expect(page.get_by_role("status")).to_contain_text("Rendez-vous pris : Jeanne Durand, ")
    cell = page.locator(f"td[data-day='{day.isoformat()}']")
    block = cell.get_by_role("listitem")
    expect(block).to_have_count(1)
    expect(block.locator(".when")).to_have_text("10:30–10:50")
    expect(block.locator(".who")).to_have_text("Jeanne Durand")
    expect(block.locator(".status")).to_have_text(_("Booked"))

    # With the keyboard: open the appointment's actions, confirm it.
    summary = block.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")
    confirm = block.get_by_role("button", name=re.compile("^" + re.escape(_("Confirm"))))
    expect(confirm).to_be_visible()
    page.keyboard.press("Tab")
    expect(confirm).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    audit()
    status = {"patient": "Jeanne Durand", "time": "10:30", "status": _("Confirmed")}
    expect(page.get_by_role("status")).to_have_text(
        _("%(patient)s, %(time)s: %(status)s.", **status)
    )
    block = page.locator(f"td[data-day='{day.isoformat()}']").get_by_role("listitem")
    expect(block.locator(".status")).to_have_text(_("Confirmed"))
