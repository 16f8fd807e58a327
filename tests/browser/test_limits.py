"""The console's *Limits* pages in Chromium: the operator sets France's limits (a bad value is
named on its field), gives a clinic its own and removes them; no axe-core violation."""

import pytest
from playwright.sync_api import expect

from core.delivery import limits
from tenants.scoping import system_scope
from tests.browser.test_clinic import expect_invalid, make_operator, submit
from tests.worlds import make_clinic

pytestmark = pytest.mark.browser


def test_operator_sets_country_and_clinic_limits(app, live_server, page, audit, log_in):
    clinic = make_clinic(app, "rive", "FR", plugins=("fr",))
    base = live_server.url("operator")
    log_in(base, make_operator(app))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Limits").click()
    page.wait_for_url(base + "/limits")
    audit(strict=True)
    page.get_by_role("link", name="France").click()
    page.wait_for_url(base + "/limits/FR")
    audit(strict=True)

    per_minute = page.get_by_role("textbox", name="Messages a minute, for each purpose")
    per_minute.fill("-5")
    submit(page, page.get_by_role("button", name="Save the limits of France"))
    audit(strict=True)
    per_minute = page.get_by_role("textbox", name="Messages a minute, for each purpose")
    expect_invalid(
        per_minute, "Messages a minute, for each purpose: A whole number from 0 (no limit)."
    )
    per_minute.fill("600")
    submit(page, page.get_by_role("button", name="Save the limits of France"))
    audit(strict=True)
    expect(page.get_by_role("status")).to_have_text("The limits of France are saved.")

    page.get_by_role("textbox", name="Subdomain of the clinic").fill("rive")
    submit(page, page.get_by_role("button", name="Open its limits"))
    page.wait_for_url(base + "/limits/FR/clinics/rive")
    audit(strict=True)
    own = page.get_by_role("textbox", name="Messages a minute, for each purpose")
    expect(own).to_have_accessible_description("Empty: the country's (600).")
    own.fill("20")
    submit(page, page.get_by_role("button", name="Save the limits of Clinic rive"))
    audit(strict=True)
    with live_server.app.app_context(), system_scope():
        assert limits.limits_for(clinic)["per_minute"] == 20

    submit(page, page.get_by_role("button", name="Remove its own limits"))
    audit(strict=True)
    expect(page.get_by_role("status")).to_have_text(
        "Clinic rive follows the limits of its country again."
    )
    with live_server.app.app_context(), system_scope():
        assert limits.limits_for(clinic)["per_minute"] == 600
