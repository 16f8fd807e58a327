"""No page is wider than the window, on a phone (390 px) or a desktop (1,440 px): every staff
page of a busy clinic, the operator's console and the patients' pages, in Chromium. Tables
too wide for a phone scroll inside their own frame; the page itself never does."""

import re
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page

from core.clinic import consent
from core.clinic.models import ConsentAction, Patient
from core.db import db
from plugins.features.appointments import service
from plugins.features.reminders import links
from tenants.scoping import tenant_scope
from tests.browser.test_clinic import make_operator
from tests.worlds import make_clinic, make_message, make_patient, make_staff

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
PLUGINS = ("fr", "outbox", "appointments", "reminders", "exports", "otp")
PARIS = ZoneInfo("Europe/Paris")
# Downloads, not pages.
NOT_PAGES = re.compile(r"\.(csv|json|ics)$")


def too_wide(page: Page) -> list[str]:
    """At each width, the page's own width when wider than the window."""
    found = []
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        scroll, client = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if scroll > client:
            culprits = page.evaluate(WIDEST)
            found.append(f"{page.url} at {size['width']} px: {scroll} px wide, by {culprits}")
    return found


# The elements that reach past the window's right edge while none of their children does
# (leaving out those inside a frame that scrolls or clips them).
WIDEST = """(() => {
  const edge = document.documentElement.clientWidth;
  const clipped = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") return true;
    }
    return false;
  };
  const past = (el) => el.getBoundingClientRect().right > edge + 0.5 && !clipped(el);
  return [...document.body.querySelectorAll("*")]
    .filter((el) => past(el) && ![...el.children].some(past))
    .slice(0, 3)
    .map((el) => el.tagName.toLowerCase() + (el.className ? "." + el.className : ""));
})()"""


@pytest.fixture
def busy_clinic(app):
    """A clinic on a working day: patients with long names and addresses, messages gone
    well and wrong, appointments, a sign-up to check."""
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    doctor = make_staff(app, clinic, "practitioner", email="dr.martin@demo.example")
    jeanne = make_patient(
        app,
        clinic,
        first_name="Jeanne-Marie-Bernadette",
        last_name="Durand-de-la-Villardière",
        email="jeanne-marie-bernadette.durand-de-la-villardiere@exemple-de-domaine.org",
    )
    lina = make_patient(app, clinic, first_name="Lina", last_name="Petit", phone="0611111111")
    with app.app_context(), tenant_scope(clinic.id):
        db.session.get(Patient, (clinic.id, lina.id)).review_needed = True
        db.session.commit()
    for receipt in ("delivered", "undelivered"):
        make_message(app, clinic, jeanne, text="Rappel " * 40, receipt=receipt)
    make_message(app, clinic, jeanne, channels=("email",))
    make_message(app, clinic, jeanne, purpose="campaign", deliver=False)  # refused
    tomorrow = datetime.now(PARIS).date() + timedelta(days=1)
    with app.app_context(), tenant_scope(clinic.id):
        appointment = service.create(
            clinic,
            {
                "patient_id": str(jeanne.id),
                "practitioner_id": str(doctor.id),
                "starts_at": datetime.combine(tomorrow, time(9), PARIS).isoformat(),
                "duration_minutes": 20,
                "reason": "Contrôle",
            },
        )
        appointment_id = appointment.id
        db.session.commit()
    return clinic, jeanne, appointment_id


def staff_pages(page: Page, audit, base: str) -> list[str]:
    """Every page the menu leads to, and those one step from them."""
    hrefs = page.eval_on_selector_all("header nav a", "links => links.map(a => a.href)")
    page.goto(base + "/patients")
    audit()
    hrefs += page.eval_on_selector_all("main a", "links => links.map(a => a.href)")
    page.goto(base + "/messages")
    audit()
    hrefs += page.eval_on_selector_all("main table a", "links => links.map(a => a.href)")[:2]
    hrefs += [base + "/agenda?view=day", base + "/patients?to_check=1"]
    found = []
    for href in hrefs:
        if urlsplit(href).hostname == urlsplit(base).hostname and not NOT_PAGES.search(href):
            found.append(href.split("#")[0])
    return list(dict.fromkeys(found))


def test_no_page_is_wider_than_a_phone_or_a_desktop(
    app, live_server, page, audit, log_in, busy_clinic
):
    clinic, jeanne, appointment_id = busy_clinic
    base = live_server.url("demo")
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")
    wide = too_wide(page)  # the home page
    pages = staff_pages(page, audit, base)
    assert len(pages) >= 18, pages
    for url in pages:
        page.goto(url)
        audit()
        wide += too_wide(page)

    # The patients' pages: a reminder's link, a consent link, the sign-in by phone.
    with live_server.app.test_request_context(), tenant_scope(clinic.id):
        patient_pages = [
            links.link(clinic, appointment_id),
            consent.link(clinic, jeanne, "sms", ConsentAction.WITHDRAWN),
        ]
    for url in [*patient_pages, base + "/me/login", base + "/login"]:
        page.goto(url)
        audit()
        wide += too_wide(page)

    # The operator's console, every page of its menu.
    console = live_server.url("operator")
    log_in(console, make_operator(app))
    wide += too_wide(page)
    menu = page.eval_on_selector_all("header nav a", "links => links.map(a => a.href)")
    for url in dict.fromkeys(menu):
        page.goto(url)
        audit()
        wide += too_wide(page)
    assert not wide, "\n".join(wide)
