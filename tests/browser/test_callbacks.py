"""A clinic's admin registers a status callback endpoint and reads the delivery log, in
Chromium, each page audited with axe-core."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_clinic import submit
from tests.fakes.callback_receiver import CallbackReceiver
from tests.plugins.features.test_callbacks import PLUGINS, allow_loopback
from tests.worlds import make_clinic, make_staff

pytestmark = pytest.mark.browser


def test_an_admin_registers_an_endpoint_and_copies_its_secret_once(
    app, live_server, page, audit, log_in, translate
):
    allow_loopback(app)
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    base = live_server.url("demo")
    _ = translate("fr")
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")

    nav = page.get_by_role("navigation", name=_("Main"))
    nav.get_by_text(_("Settings")).click()
    nav.get_by_role("link", name=_("Status callbacks")).click()
    page.wait_for_url(base + "/settings/callbacks/")
    audit()
    with CallbackReceiver() as receiver:
        page.get_by_label(_("Address of your endpoint")).fill("pas une adresse")
        submit(page, page.get_by_role("button", name=_("Save")))
        expect(page.locator("#e-url")).to_have_text(_("Enter an address starting with https://."))
        audit()
        page.get_by_label(_("Address of your endpoint")).fill(receiver.url)
        submit(page, page.get_by_role("button", name=_("Save")))
        expect(page.get_by_role("alert")).to_contain_text(
            _("Copy this secret now: it will not be shown again.")
        )
        expect(page.get_by_test_id("new-secret")).to_have_text(re.compile(r"^whsec_\S{40,}$"))
        audit()
    page.get_by_role("link", name=_("Delivery log")).click()
    page.wait_for_url(base + "/settings/callbacks/log")
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Delivery log"))
    audit()
