"""An admin writes a reminder template in Chromium: variables inserted at the cursor by their
buttons, the preview by channel following the text and wrapping inside the page."""

import re

import pytest
from playwright.sync_api import expect

from tests.worlds import make_clinic, make_staff

pytestmark = pytest.mark.browser


def test_an_admin_inserts_variables_and_sees_the_preview_follow(
    app, live_server, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo", plugins=("fr", "appointments", "reminders"))
    base = live_server.url("demo")
    _ = translate("fr")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")
    page.goto(base + "/settings/reminders")
    audit()

    template = page.get_by_role("textbox", name=_("Template (%(language)s)", language="FR"))
    template.fill("Bonjour , à demain.")
    template.evaluate("area => area.setSelectionRange(8, 8)")  # after "Bonjour "
    group = page.get_by_role(
        "group", name=_("Insert a variable in the template (%(language)s)", language="FR")
    )
    group.get_by_role("button", name=_("patient's first name")).click()
    expect(template).to_have_value("Bonjour {{ patient }}, à demain.")
    expect(template).to_be_focused()
    page.keyboard.type(" ")
    group.get_by_role("button", name=_("link to confirm or cancel")).click()
    expect(template).to_have_value("Bonjour {{ patient }} {{ link }}, à demain.")

    sms = page.locator("#preview-sms")
    expect(sms).to_contain_text(re.compile(r"^Bonjour Jeanne https?://\S+, à demain\."))
    expect(page.locator("#preview-sms-count")).to_contain_text("1 SMS")
    expect(page.locator("#preview-voice")).to_have_text(sms.inner_text())
    # The link is long: it wraps inside the page.
    width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], width

    # A variable the reminders do not have: said in the preview, then refused at its field.
    template.fill("Bonjour {{ prenom }}")
    expect(page.locator("#preview-error")).to_contain_text("{{ prenom }}")
    with page.expect_navigation():
        page.get_by_role("button", name=_("Save")).click()
    audit()
    template = page.get_by_role("textbox", name=_("Template (%(language)s)", language="FR"))
    expect(template).to_have_attribute("aria-invalid", "true")
    expect(template).to_have_accessible_description(re.compile(re.escape("{{ prenom }}")))
    assert audit.minor == [], audit.minor
