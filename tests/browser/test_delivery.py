"""Following delivery in a real browser: the clinic's message log and the operator's KPIs,
each page audited with axe-core."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core.db import utcnow
from tests.browser.test_clinic import expect_invalid, make_operator, submit
from tests.worlds import make_clinic, make_message, make_patient, make_staff

pytestmark = pytest.mark.browser

PLUGINS = ("outbox", "fr")


@pytest.fixture
def clinic(app):
    clinic = make_clinic(app, "demo", "FR", plugins=PLUGINS)
    patient = make_patient(app, clinic, first_name="Jeanne", last_name="Durand", email="j@ex.org")
    start = utcnow() - timedelta(minutes=20)
    for i, seconds in enumerate((1, 2, 9)):
        make_message(
            app,
            clinic,
            patient,
            text=f"Rappel {i}",
            created=start + timedelta(minutes=i),
            receipt="delivered",
            after=seconds,
        )
    make_message(app, clinic, patient, channels=("email",), created=start, receipt="undelivered")
    make_message(app, clinic, patient, purpose="reminder", deliver=False)
    return clinic


def test_staff_follow_a_message_from_the_log(
    app, live_server, page, audit, log_in, translate, clinic
):
    base = live_server.url("demo")
    _ = translate("fr")
    log_in(base, make_staff(app, clinic, "secretary"), locale="fr")

    nav = page.get_by_role("navigation", name=_("Main"))
    nav.get_by_role("link", name=_("Messages")).click()
    page.wait_for_url(base + "/messages")
    audit()
    expect(nav.get_by_role("link", name=_("Messages"))).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("status")).to_have_text(_("%(num)d message", "%(num)d messages", 5))
    rows = page.get_by_role("table").locator("tbody tr")
    expect(rows).to_have_count(5)
    expect(page.get_by_role("table")).not_to_contain_text("Rappel 2")  # no content in the list

    page.get_by_role("combobox", name=_("Status"), exact=True).select_option("delivered")
    page.get_by_role("combobox", name=_("Channel"), exact=True).select_option("sms")
    page.get_by_role("button", name=_("Filter")).click()
    page.wait_for_url(re.compile(re.escape(base) + r"/messages\?.*status=delivered"))
    audit()
    expect(rows).to_have_count(3)
    expect(page.get_by_role("combobox", name=_("Status"), exact=True)).to_have_value("delivered")

    rows.first.get_by_role("link").click()
    page.wait_for_url(re.compile(re.escape(base) + r"/messages/[0-9a-f-]{36}$"))
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        _("Message to %(name)s", name="Jeanne Durand")
    )
    expect(page.locator(".content")).to_contain_text("Rappel 2")  # newest first
    history = page.get_by_role("table", name=_("History"))
    expect(history.locator("tbody tr")).to_have_count(3)
    attempts = page.get_by_role("table", name=_("Attempts"))
    expect(attempts).to_contain_text("outbox_sms")

    # A bad filter comes back named next to its field.
    page.goto(base + "/messages?status=lost")
    audit()
    status = page.get_by_role("combobox", name=_("Status"), exact=True)
    expect(status).to_have_attribute("aria-invalid", "true")


def test_an_operator_reads_the_delivery_kpis(app, live_server, page, audit, log_in, clinic):
    base = live_server.url("operator")
    log_in(base, make_operator(app))

    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Delivery").click()
    page.wait_for_url(base + "/kpis")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delivery")
    expect(page.get_by_role("radio", name="Last hour")).to_be_checked()
    chart = page.get_by_role("img", name="Delivery rate and speed by channel")
    expect(chart).to_be_visible()
    by_channel = page.get_by_role("table", name="By channel")
    sms = by_channel.get_by_role("row").filter(has=page.get_by_role("rowheader", name="SMS"))
    expect(sms.get_by_role("cell").nth(7)).to_have_text("100.0%")  # delivery rate
    expect(sms.get_by_role("cell").nth(12)).to_have_text("66.7%")  # within 5 s: 1 s, 2 s, not 9
    expect(page.get_by_role("table", name="By clinic")).to_contain_text("Clinic demo (demo)")

    page.get_by_role("radio", name="Last 7 days").check()
    submit(page, page.get_by_role("button", name="Show"))
    audit()
    expect(page).to_have_url(re.compile(r"window=week"))
    expect(page.get_by_role("radio", name="Last 7 days")).to_be_checked()

    page.get_by_role("radio", name="Custom").check()
    page.get_by_label("From (UTC)").fill("2026-03-02T10:00")
    page.get_by_label("To (UTC)").fill("2026-03-01T10:00")
    submit(page, page.get_by_role("button", name="Show"))
    audit()
    expect_invalid(page.get_by_label("To (UTC)"), re.compile("The end must come after the start."))


def test_an_operator_adds_a_fallback_sms_provider(app, live_server, page, audit, log_in, clinic):
    base = live_server.url("operator")
    log_in(base, make_operator(app))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Providers").click()
    page.wait_for_url(base + "/providers")
    audit()
    page.get_by_label("Country").select_option("FR")
    page.get_by_label("Provider").select_option("twilio_sms")
    page.get_by_label("Priority").fill("first")
    submit(page, page.get_by_role("button", name="Save"))
    audit()
    priority = page.get_by_label("Priority")
    expect_invalid(priority, re.compile("Enter a whole number."))

    priority.fill("2")
    submit(page, page.get_by_role("button", name="Save"))
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="twilio_sms"))
    expect(row.get_by_role("cell").nth(2)).to_have_text("2")  # country, channel, priority
    audit()
    row.get_by_role("button", name="Stop using twilio_sms in FR").click()
    expect(page.get_by_text("No provider is listed yet")).to_be_visible()
    audit()
