"""Vaccination in Chromium: a patient logs in with a code sent by SMS, books dose 1 and a
dose 2 inside the window with the keyboard and the mouse, sees both on their page; all
at 390 px wide, in French; centre staff mark a dose given and read the fill rates; an admin
changes and adds vaccines, opens a centre on a day and sets its stock, whose slots patients
are then offered. Every page is audited with axe-core."""

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery.models import Message
from plugins.features.vaccination import booking
from plugins.features.vaccination.models import Booking, Vaccine
from tenants.scoping import tenant_scope
from tests.plugins.features.vaccination_world import PLUGINS, at, build, today
from tests.worlds import make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser

CODE = re.compile(r"\b(\d{6})\b")


def last_code(app, clinic) -> str:
    with app.app_context(), tenant_scope(clinic.id):
        texts = db.session.scalars(
            sa.select(Message.content).order_by(Message.created_at.desc()).limit(1)
        ).all()
    return CODE.search(texts[0]["text"])[1]


def patient_logs_in(app, clinic, page, base, audit, _) -> None:
    """The patient of 06 12 34 56 78 logs in with the code sent by SMS, each page audited."""
    page.goto(base + "/me/login")
    audit()
    page.get_by_role("textbox", name=_("Mobile or home phone")).fill("06 12 34 56 78")
    page.get_by_role("button", name=_("Send me a code")).click()
    page.wait_for_url(re.compile(r"/me/login/code"))
    audit()
    page.get_by_role("textbox", name=_("Code")).fill(last_code(app, clinic))
    page.get_by_role("button", name=_("Continue")).click()
    page.wait_for_url(base + "/me/")
    audit()


def test_a_patient_books_both_doses(app, live_server, page, audit, translate):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    build(app, clinic)
    patient = make_patient(app, clinic, birth_date=date(1950, 5, 4))
    with app.app_context(), tenant_scope(clinic.id):
        db.session.get(Patient, (clinic.id, patient.id)).signed_up_at = utcnow()
        db.session.commit()
    _ = translate("fr")  # a French clinic's pages are in French
    base = live_server.url("demo")
    page.set_viewport_size({"width": 390, "height": 844})

    patient_logs_in(app, clinic, page, base, audit, _)

    page.get_by_role("link", name=_("Book a vaccination")).click()
    audit()
    page.get_by_role("combobox", name=_("Vaccine")).select_option(label="Comirnaty")
    page.get_by_role("button", name=_("See the slots")).click()
    audit()
    first = page.get_by_role("group", name=_("Choose the slot of your first dose"))
    first.get_by_role("radio").first.focus()
    page.keyboard.press("Space")  # chosen with the keyboard
    page.get_by_role("button", name=_("Next")).click()
    audit()
    second = page.get_by_role("group", name=_("Choose the slot of your second dose"))
    second.get_by_role("radio").nth(2).check()
    page.get_by_role("button", name=_("Book both doses")).click()
    page.wait_for_url(base + "/me/vaccination")
    audit()
    expect(page.get_by_role("status")).to_contain_text(
        _("Booked: %(n)d doses of %(vaccine)s.", n=2, vaccine="Comirnaty")
    )
    expect(page.get_by_role("link", name=_("Move dose %(n)d", n=2))).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    with app.app_context(), tenant_scope(clinic.id):
        doses = db.session.scalars(sa.select(Booking.dose).order_by(Booking.dose)).all()
    assert doses == [1, 2]


def test_centre_staff_see_the_day_mark_a_dose_and_read_the_fill_rates(
    app, live_server, page, audit, translate, log_in
):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    world = build(app, clinic)
    patient = make_patient(app, clinic, birth_date=date(1950, 5, 4))
    day = today() + timedelta(days=2)
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        booking.book(
            clinic,
            who,
            world.centre_id,
            world.vaccine_id,
            at(day, 9),
            at(day + timedelta(days=25), 9),
        )
        db.session.commit()
    _ = translate("fr")
    base = live_server.url("demo")
    log_in(base, make_staff(app, clinic, "admin"), "fr")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/vaccination?centre={world.centre_id}&date={day.isoformat()}")
    audit()
    page.get_by_role("textbox", name=_("Batch number")).fill("FK1234")
    page.get_by_role("button", name=_("Given"), exact=True).click()
    audit()
    expect(page.get_by_role("status")).to_contain_text(_("Dose %(n)d marked as given.", n=1))
    page.get_by_role("link", name=_("Fill rates per centre")).click()
    audit()
    expect(
        page.get_by_role("img", name=_("Bar chart of the fill rates in the table below."))
    ).to_be_visible()
    page.goto(f"{base}/vaccination/import")
    audit()


def test_an_admin_changes_a_vaccines_interval_and_adds_a_vaccine_with_the_keyboard(
    app, live_server, page, audit, translate, log_in
):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    world = build(app, clinic)
    _ = translate("fr")
    base = live_server.url("demo")
    log_in(base, make_staff(app, clinic, "admin"), "fr")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/vaccination")
    audit()
    page.get_by_role("link", name=_("Vaccines, campaigns and centres")).click()
    audit()
    page.get_by_role("link", name=_("Change %(name)s", name="Comirnaty")).click()
    audit()
    said = _(
        "Bookings already made keep their dates: a new interval applies to doses booked or "
        "moved from now on."
    )
    expect(page.get_by_text(said)).to_be_visible()
    page.get_by_role("spinbutton", name=_("At most")).fill("7")
    page.get_by_role("spinbutton", name=_("At most")).press("Enter")
    audit()
    expect(page.get_by_role("spinbutton", name=_("At most"))).to_have_attribute(
        "aria-invalid", "true"
    )
    page.get_by_role("spinbutton", name=_("At most")).fill("49")
    page.get_by_role("spinbutton", name=_("At most")).press("Enter")
    expect(page.get_by_role("status")).to_contain_text(_("Vaccine saved."))
    audit()
    page.get_by_role("link", name=_("Change %(name)s", name="Centre Paris 15")).click()
    audit()
    with app.app_context(), tenant_scope(clinic.id):
        shot = booking.vaccine(world.vaccine_id)
        assert shot.max_interval_days == 49

    # A new vaccine, typed with the keyboard; without a name it is refused, naming the field.
    page.get_by_role("link", name=_("Back to the set-up")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Vaccination set-up"))
    audit()
    page.get_by_role("link", name=_("Add a vaccine")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("New vaccine"))
    audit()
    page.get_by_role("textbox", name=_("Code (CSV files use it)")).fill("vaxzevria")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the name is still empty
    name = page.get_by_role("textbox", name=_("Name patients read"))
    expect(name).to_have_attribute("aria-invalid", "true")
    audit()
    name.fill("Vaxzevria")
    page.get_by_role("spinbutton", name=_("At least")).fill("28")
    page.get_by_role("spinbutton", name=_("At most")).fill("84")
    page.get_by_role("spinbutton", name=_("At most")).press("Enter")
    expect(page.get_by_role("status")).to_contain_text(_("Vaccine added."))
    expect(page.get_by_role("link", name=_("Change %(name)s", name="Vaxzevria"))).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    audit()
    for link, heading in (
        (_("Add a campaign"), _("New campaign")),
        (_("Add a centre"), _("New centre")),
    ):
        page.get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        audit()
        page.get_by_role("link", name=_("Back to the set-up")).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(_("Vaccination set-up"))
        audit()
    with app.app_context(), tenant_scope(clinic.id):
        added = db.session.scalars(sa.select(Vaccine).where(Vaccine.code == "vaxzevria")).one()
        assert (added.min_interval_days, added.ideal_interval_days, added.max_interval_days) == (
            28,
            28,
            84,
        )


def test_an_admin_opens_a_day_and_patients_are_offered_its_slots(
    app, live_server, page, audit, translate, log_in
):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    world = build(app, clinic, days=())  # a centre with no opening day yet
    patient = make_patient(app, clinic, birth_date=date(1950, 5, 4))
    with app.app_context(), tenant_scope(clinic.id):
        db.session.get(Patient, (clinic.id, patient.id)).signed_up_at = utcnow()
        db.session.commit()
    _ = translate("fr")
    base = live_server.url("demo")
    log_in(base, make_staff(app, clinic, "admin"), "fr")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/vaccination/centres/{world.centre_id}/edit")
    audit()
    page.get_by_role("link", name=_("Opening days and stock")).click()
    expect(page.get_by_text(_("No opening day ahead."))).to_be_visible()
    audit()
    day = today() + timedelta(days=1)
    page.get_by_label(_("Day")).fill(day.isoformat())
    page.get_by_label(_("Opens at")).fill("10:00")
    page.get_by_label(_("Closes at")).fill("09:00")  # before it opens: refused, named
    page.get_by_role("button", name=_("Add the opening day")).click()
    expect(page.get_by_label(_("Closes at"))).to_have_attribute("aria-invalid", "true")
    audit()
    page.get_by_label(_("Closes at")).fill("10:30")
    page.get_by_role("button", name=_("Add the opening day")).click()
    expect(page.get_by_role("status")).to_contain_text(_("Opening day added."))
    expect(page.get_by_role("cell", name="10:00–10:30", exact=True)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    audit()
    page.get_by_role("link", name=_("Set the stock of a vaccine for a day")).click()
    audit()
    page.get_by_role("combobox", name=_("Vaccine")).select_option(label="Comirnaty")
    page.get_by_label(_("Day")).fill(day.isoformat())
    page.get_by_role("spinbutton", name=_("Doses")).fill("20")
    page.get_by_role("button", name=_("Save")).click()
    expect(page.get_by_role("status")).to_contain_text(_("Stock saved."))
    expect(page.get_by_role("cell", name="20 / 20", exact=True)).to_be_visible()
    audit()

    # The patient is offered the day's three slots.
    page.context.clear_cookies()
    patient_logs_in(app, clinic, page, base, audit, _)
    page.goto(f"{base}/me/vaccination/book?centre={world.centre_id}&vaccine={world.vaccine_id}")
    first = page.get_by_role("group", name=_("Choose the slot of your first dose"))
    expect(first.get_by_role("radio")).to_have_count(3)
    expect(first.get_by_role("radio", name="10:20")).to_be_visible()
    audit()
