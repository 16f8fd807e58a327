"""A secretary works the agenda in Chromium: books a free slot of the time grid, corrects
every mistake at once, moves appointments by mouse and by keyboard; each page audited."""

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from core.db import db
from plugins.features.appointments import Appointment, service
from tenants.scoping import tenant_scope
from tests.browser.test_clinic import expect_invalid, submit
from tests.worlds import make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser

PARIS = ZoneInfo("Europe/Paris")


def next_monday():
    today = datetime.now(PARIS).date()
    return today + timedelta(days=7 - today.weekday())


def book(app, clinic, patient, doctor, day, at: time) -> None:
    with app.app_context(), tenant_scope(clinic.id):
        service.create(
            clinic,
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": datetime.combine(day, at, PARIS).isoformat(),
                "duration_minutes": 30,
            },
        )
        db.session.commit()


def starts(app, clinic) -> list[datetime]:
    with app.app_context(), tenant_scope(clinic.id):
        rows = db.session.scalars(sa.select(Appointment.starts_at)).all()
        return [at.astimezone(PARIS).replace(tzinfo=None) for at in rows]


def slot(page, day, start: str):
    return page.locator(f"td.slot[data-day='{day.isoformat()}'][data-start='{start}']")


@pytest.fixture
def world(app):
    clinic = make_clinic(app, "demo", plugins=("fr", "appointments"))
    doctor = make_staff(app, clinic, "practitioner", email="dr.martin@demo.example")
    jeanne = make_patient(app, clinic, first_name="Jeanne", last_name="Durand")
    make_patient(app, clinic, first_name="Lucas", last_name="Bernard", phone="0611111111")
    return clinic, doctor, jeanne


def test_a_secretary_books_a_free_slot_of_the_grid(
    app, world, live_server, page, audit, log_in, translate
):
    clinic, _doctor, _jeanne = world
    base = live_server.url("demo")
    _ = translate("fr")  # a French clinic: its pages are in French
    log_in(base, make_staff(app, clinic, "secretary"), locale="fr")

    page.get_by_role("navigation", name=_("Main")).get_by_role("link", name=_("Agenda")).click()
    page.wait_for_url(re.compile(re.escape(base + "/agenda")))
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Agenda"))
    page.get_by_role("link", name=_("Next week")).click()
    page.wait_for_load_state("load")
    audit()
    monday = next_monday()
    grid = page.get_by_role("table")
    expect(grid.locator("caption")).to_contain_text("Practitioner demo")

    # A click on Monday's free 10:30 fills the booking form; the focus goes to it.
    slot(page, monday, "10:30").get_by_role("link").click()
    booking = page.get_by_role("region", name=_("New appointment"))
    expect(booking.get_by_label(_("Start"))).to_have_value("10:30")
    expect(booking.get_by_label(_("Date"))).to_have_value(monday.isoformat())
    expect(booking.get_by_role("combobox", name=_("Practitioner"), exact=True)).to_have_value(
        str(world[1].id)
    )
    # Booked without a patient and with a wrong type: both mistakes are said at once.
    booking.get_by_role("combobox", name=_("Type"), exact=True).fill("rayons X !")
    submit(page, booking.get_by_role("button", name=_("Book")))
    audit()
    booking = page.get_by_role("region", name=_("New appointment"))
    summary = booking.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("listitem")).to_have_count(2)
    expect_invalid(
        booking.get_by_role("combobox", name=_("Patient"), exact=True),
        _("This field is required."),
    )
    expect(booking.get_by_role("combobox", name=_("Type"), exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(booking.get_by_label(_("Start"))).to_have_value("10:30")  # what was typed stays

    # Find the patient (the slot chosen stays), correct the type, book.
    booking.get_by_role("searchbox", name=_("Find a patient by name, phone or e-mail")).fill(
        "06 12 34 56 78"
    )
    submit(page, booking.get_by_role("button", name=_("Find")))
    audit()
    booking = page.get_by_role("region", name=_("New appointment"))
    expect(booking.get_by_label(_("Start"))).to_have_value("10:30")
    patient = booking.get_by_role("combobox", name=_("Patient"), exact=True)
    expect(patient.locator("option")).to_have_text([_("Choose a patient"), "Durand Jeanne"])
    patient.select_option(label="Durand Jeanne")
    booking.get_by_role("combobox", name=_("Type"), exact=True).fill("consultation")
    submit(page, booking.get_by_role("button", name=_("Book")))
    audit()
    expect(page.get_by_role("status").first).to_contain_text("Rendez-vous pris : Jeanne Durand, ")
    block = slot(page, monday, "10:30").get_by_role("listitem")
    expect(block.locator(".when")).to_have_text("10:30–11:00")
    expect(slot(page, monday, "10:30")).to_have_attribute("rowspan", "2")
    assert starts(app, clinic) == [datetime.combine(monday, time(10, 30))]
    assert audit.minor == [], audit.minor


def test_a_secretary_moves_appointments_by_mouse_and_by_keyboard(
    app, world, live_server, page, audit, log_in, translate
):
    clinic, doctor, jeanne = world
    monday = next_monday()
    book(app, clinic, jeanne, doctor, monday, time(9))
    base = live_server.url("demo")
    _ = translate("fr")
    log_in(base, make_staff(app, clinic, "secretary"), locale="fr")
    page.set_viewport_size({"width": 1440, "height": 1400})  # a drag stays in the window
    page.goto(f"{base}/agenda?date={monday.isoformat()}")
    audit()

    # By mouse: dragged from Monday 09:00 to 11:00.
    block = slot(page, monday, "09:00").get_by_role("listitem")
    with page.expect_navigation():
        block.locator(".what").drag_to(slot(page, monday, "11:00"))
    audit()
    expect(page.get_by_role("status").first).to_contain_text("Rendez-vous déplacé")
    assert starts(app, clinic) == [datetime.combine(monday, time(11))]

    # By keyboard: Move, down two quarters of an hour, right to Tuesday, Enter.
    move = slot(page, monday, "11:00").get_by_role("button", name=re.compile("^" + _("Move")))
    move.focus()
    page.keyboard.press("Enter")
    expect(slot(page, monday, "11:00")).to_be_focused()
    page.keyboard.press("ArrowDown")  # the 30 minutes' cell spans two rows: 11:30
    expect(slot(page, monday, "11:30")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    tuesday = monday + timedelta(days=1)
    expect(slot(page, tuesday, "11:45")).to_be_focused()
    expect(page.locator("#grid-status")).to_contain_text("11:45")
    # Escape gives up; the focus goes back to the Move button.
    page.keyboard.press("Escape")
    expect(move).to_be_focused()
    page.keyboard.press("Enter")
    for key in ("ArrowDown", "ArrowDown", "ArrowRight"):
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    audit()
    assert starts(app, clinic) == [datetime.combine(tuesday, time(11, 45))]
    expect(slot(page, tuesday, "11:45").get_by_role("listitem").locator(".when")).to_have_text(
        "11:45–12:15"
    )

    # The same checks as the API: onto another appointment, it is refused, said at its form.
    book(app, clinic, jeanne, doctor, tuesday, time(14))
    page.reload()
    audit()
    block = slot(page, tuesday, "11:45").get_by_role("listitem")
    with page.expect_navigation():
        block.locator(".what").drag_to(slot(page, tuesday, "13:45"))
    audit()
    expect(page.locator("details[open] .error")).to_contain_text("14:00")
    assert sorted(starts(app, clinic)) == [
        datetime.combine(tuesday, time(11, 45)),
        datetime.combine(tuesday, time(14)),
    ]
    assert audit.minor == [], audit.minor
