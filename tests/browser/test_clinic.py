"""What staff and operators do in a real browser, each page audited with axe-core."""

import re
from datetime import date

import pyotp
import pytest
from flask_babel import force_locale, format_date
from playwright.sync_api import expect

from core.db import db
from tenants import provisioning
from tenants.scoping import system_scope
from tests.worlds import PASSWORD, Account, make_clinic, make_staff

pytestmark = pytest.mark.browser


def test_admin_enrols_then_creates_and_edits_a_patient(app, live_server, page, audit, translate):
    clinic = make_clinic(app, "demo")
    admin = make_staff(app, clinic, "admin", enrolled=False)
    base = live_server.url("demo")
    _ = translate("fr")  # a French clinic: its pages are in French

    page.goto(base + "/")
    page.wait_for_url(re.compile(re.escape(base + "/login")))
    audit()
    page.get_by_role("textbox", name=_("E-mail"), exact=True).fill(admin.email)
    page.get_by_role("textbox", name=_("Password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=_("Continue")).click()

    # First login: the authenticator app is set up from the QR code or the key under it.
    page.wait_for_url(base + "/login/enrol")
    audit()
    qr = page.get_by_role("img", name=_("QR code to scan with your authenticator app"))
    expect(qr.locator("svg")).to_be_visible()
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    code = page.get_by_role("textbox", name=_("Code"), exact=True)
    code.fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name=_("Confirm and log in")).click()

    page.wait_for_url(base + "/")
    audit()
    welcome = _("Welcome, %(name)s", name=f"Admin {clinic.slug}")
    expect(page.get_by_role("heading", level=1)).to_have_text(welcome)

    nav = page.get_by_role("navigation", name=_("Main"))
    nav.get_by_role("link", name=_("Patients")).click()
    page.wait_for_url(base + "/patients")
    audit()
    expect(page.get_by_role("status")).to_have_text(_("%(num)d patient", "%(num)d patients", 0))
    page.get_by_role("main").get_by_role("link", name=_("New patient")).click()

    page.wait_for_url(base + "/patients/new")
    audit()
    page.get_by_role("textbox", name=_("First name"), exact=True).fill("Jeanne")
    page.get_by_role("textbox", name=_("Last name"), exact=True).fill("Durand")
    page.get_by_role("textbox", name=_("Mobile or landline"), exact=True).fill("06 12 34 56 78")
    page.get_by_role("textbox", name=_("E-mail"), exact=True).fill("jeanne.durand@example.org")
    page.get_by_role("textbox", name=_("Birth date"), exact=True).fill("1958-03-14")
    page.get_by_role("button", name=_("Save")).click()

    page.wait_for_url(re.compile(re.escape(base) + r"/patients/[0-9a-f-]{36}$"))
    patient_url = page.url
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text("Jeanne Durand")
    created = _("Patient %(name)s created.", name="Jeanne Durand")
    expect(page.get_by_role("status")).to_have_text(created)
    expect(fact(page, _("Phone"))).to_have_text("06 12 34 56 78")
    expect(fact(page, _("E-mail"))).to_have_text("jeanne.durand@example.org")
    expect(fact(page, _("Birth date"))).to_have_text(french_date(app, date(1958, 3, 14)))

    # An invalid number: the form comes back with the error next to the field, nothing saved.
    page.get_by_role("link", name=_("Edit")).click()
    page.wait_for_url(patient_url + "/edit")
    audit()
    page.get_by_role("textbox", name=_("Last name"), exact=True).fill("Martin")
    phone = page.get_by_role("textbox", name=_("Mobile or landline"), exact=True)
    expect(phone).to_have_value("06 12 34 56 78")
    phone.fill("06 12")
    submit(page, page.get_by_role("button", name=_("Save")))

    invalid = _("This is not a valid phone number.")
    audit()
    expect_invalid(phone, invalid)
    expect(page.locator(".field.invalid")).to_have_count(1)
    expect(page.locator(".field.invalid")).to_contain_text(invalid)
    expect(phone).to_have_value("06 12")  # what was typed stays, to be corrected
    expect(page.get_by_role("textbox", name=_("Last name"), exact=True)).to_have_value("Martin")

    page.get_by_role("link", name=_("Cancel")).click()
    page.wait_for_url(patient_url)
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text("Jeanne Durand")
    expect(fact(page, _("Phone"))).to_have_text("06 12 34 56 78")

    nav.get_by_role("link", name=_("Patients")).click()
    page.wait_for_url(base + "/patients")
    audit()
    rows = page.get_by_role("table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Durand Jeanne")
    expect(rows.first).to_contain_text("06 12 34 56 78")


def test_operator_creates_a_clinic_and_enables_a_plugin(app, live_server, page, audit, log_in):
    operator = make_operator(app)
    base = live_server.url("operator")

    log_in(base, operator)
    expect(page.get_by_role("heading", level=1)).to_have_text("Clinics")
    expect(page.get_by_role("cell", name="No clinic yet.")).to_be_visible()

    page.get_by_role("textbox", name="Name", exact=True).fill("Cabinet du Parc")
    page.get_by_role("textbox", name="Subdomain", exact=True).fill("parc")
    page.get_by_role("combobox", name="Country", exact=True).select_option(label="France")
    submit(page, page.get_by_role("button", name="Create clinic"))
    audit()
    expect(page.get_by_role("status")).to_have_text("Clinic Cabinet du Parc created.")
    row = page.get_by_role("row").filter(has_text="Cabinet du Parc")
    expect(row).to_contain_text("France")
    expect(row).to_contain_text("Europe/Paris")
    address = row.get_by_role("link", name=f"parc.localhost:{live_server.port}")
    expect(address).to_have_attribute("href", live_server.url("parc", "/"))

    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Plugins").click()
    page.wait_for_url(base + "/plugins")
    audit()
    expect(nav.get_by_role("link", name="Plugins")).to_have_attribute("aria-current", "page")
    # The name starts with what is seen (axe: label-content-name-mismatch), then says more.
    enable = page.get_by_role("button", name="Off — Enable Exports in France", exact=True)
    disable = page.get_by_role("button", name="On — Disable Exports in France", exact=True)
    expect(enable).to_be_visible()
    submit(page, enable)
    expect(disable).to_be_visible()
    audit()
    expect(enable).to_have_count(0)
    with app.app_context(), system_scope():
        assert "exports" in provisioning.country_plugins("FR")
        assert "exports" not in provisioning.country_plugins("DE")

    submit(page, disable)
    expect(enable).to_be_visible()
    audit()

    # The new clinic answers at its own address: its login page.
    page.goto(live_server.url("parc", "/"))
    page.wait_for_url(re.compile(re.escape(live_server.url("parc", "/login"))))
    audit()
    expect(page.get_by_role("banner")).to_contain_text("Cabinet du Parc")


@pytest.mark.parametrize("logged_in", [False, True], ids=["login-page", "home-page"])
def test_skip_link_is_the_first_tab_stop_and_moves_focus_to_main(
    app, live_server, page, audit, log_in, translate, logged_in
):
    clinic = make_clinic(app, "demo")
    base = live_server.url("demo")
    if logged_in:
        log_in(base, make_staff(app, clinic, "secretary"), locale="fr")
    else:
        page.goto(base + "/login")
        audit()

    skip = page.get_by_role("link", name=translate("fr")("Skip to content"))
    expect(skip).not_to_be_in_viewport()
    page.keyboard.press("Tab")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # shown once focused

    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("#main$"))
    main = page.get_by_role("main")
    expect(main).to_be_focused()
    # The next Tab stop is the first control of the content, past the header and its menu.
    page.keyboard.press("Tab")
    expect(main.locator("a, button, select, input:not([type=hidden])").first).to_be_focused()


def test_a_taken_subdomain_is_refused_next_to_the_field(app, live_server, page, audit, log_in):
    make_clinic(app, "parc")
    base = live_server.url("operator")
    log_in(base, make_operator(app))

    page.get_by_role("textbox", name="Name", exact=True).fill("Another clinic")
    subdomain = page.get_by_role("textbox", name="Subdomain", exact=True)
    subdomain.fill("parc")
    submit(page, page.get_by_role("button", name="Create clinic"))
    audit()
    expect_invalid(subdomain, "This subdomain is taken.")
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Another clinic")
    expect(page.get_by_role("row").filter(has_text="Another clinic")).to_have_count(0)


def expect_invalid(field, message) -> None:
    """The field is marked invalid and the error (a text or pattern) is read out with it."""
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(message)


def submit(page, button) -> None:
    """Click a button whose form answers on the same address: wait for the new page."""
    with page.expect_navigation():
        button.click()


def fact(page, term: str):
    """The value next to ``term`` on a patient page."""
    term = page.locator("dl.facts dt").filter(has_text=re.compile(f"^{re.escape(term)}$"))
    return term.locator("xpath=following-sibling::dd[1]")


def french_date(app, day: date) -> str:
    with app.app_context(), force_locale("fr"):
        return format_date(day)


def make_operator(app) -> Account:
    """An operator whose authenticator app is already set up (as make_staff does for staff)."""
    secret = pyotp.random_base32()
    with app.app_context(), system_scope():
        operator = provisioning.create_operator("ops@relais.example", "Olga Operator", PASSWORD)
        operator.totp_secret, operator.totp_enrolled = secret, True
        db.session.commit()
        return Account(operator.id, operator.email, PASSWORD, secret)
