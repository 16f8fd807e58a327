"""The clinic's menu in Chromium: daily work first on one line at 1,440 px, at most 7 entries,
the settings under one menu that opens and closes with the keyboard."""

import re

import pytest
from playwright.sync_api import expect

from tests.worlds import make_clinic, make_staff

pytestmark = pytest.mark.browser

PLUGINS = ("fr", "outbox", "appointments", "reminders", "exports", "otp")


def test_daily_work_first_and_the_settings_under_one_menu(
    app, live_server, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    base = live_server.url("demo")
    _ = translate("fr")
    page.set_viewport_size({"width": 1440, "height": 900})
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")

    nav = page.get_by_role("navigation", name=_("Main"))
    top = nav.locator(":scope > ul > li")
    expect(top).to_have_count(6)  # at most 7
    names = [_("Home"), _("Agenda"), _("Patients"), _("Messages"), _("Outbox"), _("Settings")]
    expect(top).to_have_text([re.compile(r"^\s*" + re.escape(n)) for n in names])
    boxes = top.evaluate_all(
        "items => items.map(li => li.getBoundingClientRect()).map(r => [r.top, r.bottom])"
    )
    # One line: every entry's top is above every entry's bottom.
    assert max(t for t, _b in boxes) < min(b for _t, b in boxes), f"the menu wraps: {boxes}"

    # The settings menu, by keyboard: Enter opens it, Tab reaches its links, Escape closes it.
    menu = nav.locator("summary")
    menu.focus()
    page.keyboard.press("Enter")
    staff = nav.get_by_role("link", name=_("Staff"))
    expect(staff).to_be_visible()
    inside = nav.locator("details ul a")
    expect(inside).to_have_text(
        [
            _("Staff"),
            _("Features"),
            _("Messaging rules"),
            _("API keys"),
            _("Usage"),
            _("Audit log"),
            _("Reminders"),
            _("Reminder figures"),
            _("Export"),
        ]
    )
    page.keyboard.press("Tab")
    expect(staff).to_be_focused()
    page.keyboard.press("Escape")
    expect(staff).to_be_hidden()
    expect(menu).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # follows "Staff"
    page.wait_for_url(base + "/staff")
    audit()
    # Inside the menu's section, the menu says so; the page's own link is the current one.
    expect(nav.locator("summary")).to_have_class("current")
    nav.locator("summary").click()
    expect(nav.get_by_role("link", name=_("Staff"))).to_have_attribute("aria-current", "page")
    assert audit.minor == [], audit.minor
