"""A practitioner signs a clinic up on the main domain in Chromium, on a phone (390 px), with
the keyboard only: the subdomain's availability is read out while typing, a bad phone is named
on the form, and the page that follows says where the link went. No axe-core violation."""

import pytest
from playwright.sync_api import expect

from core.db import db
from tenants.models import Country
from tests.browser.test_clinic import expect_invalid
from tests.worlds import make_clinic

pytestmark = pytest.mark.browser


@pytest.fixture
def france_open(app):
    make_clinic(app, "existing", "FR", plugins=("fr", "outbox", "otp"))
    with app.app_context():
        db.session.get(Country, "FR").self_signup = True
        db.session.commit()
    yield
    with app.app_context():
        db.session.get(Country, "FR").self_signup = False
        db.session.commit()


def test_a_practitioner_signs_up_with_the_keyboard_on_a_phone(
    app, live_server, page, audit, france_open
):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"http://localhost:{live_server.port}/signup")
    audit(strict=True)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign your clinic up")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_role("textbox", name="Clinic name").focus()
    page.keyboard.type("Cabinet de la Rive")
    page.keyboard.press("Tab")
    page.keyboard.type("existing")
    status = page.get_by_role("status")
    expect(status).to_have_text("This subdomain is taken.")
    for _ in "existing":
        page.keyboard.press("Backspace")
    page.keyboard.type("rive")
    expect(status).to_have_text("This subdomain is free.")
    page.keyboard.press("Tab")  # the country: France, the only one open
    page.keyboard.press("Tab")
    page.keyboard.type("Claire Martin")
    page.keyboard.press("Tab")
    page.keyboard.type("claire@rive.example")
    page.keyboard.press("Tab")
    page.keyboard.type("01 42 68 53 00")  # a landline: no text message reaches it
    with page.expect_navigation():
        page.keyboard.press("Enter")
    audit(strict=True)
    phone = page.get_by_role("textbox", name="Mobile phone")
    expect_invalid(phone, "Enter a mobile number: a code will come to it.")

    phone.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("06 12 34 56 78")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    audit(strict=True)
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    expect(page.get_by_role("main")).to_contain_text("claire@rive.example")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
