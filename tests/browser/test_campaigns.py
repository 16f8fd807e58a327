"""An admin builds a campaign's segment in Chromium, sees the live count follow the form,
starts it, and watches the progress bar reach the end as a real worker sends it; each page
audited with axe-core, at a phone's width."""

import pytest
from playwright.sync_api import expect

from tests.plugins.features.test_campaigns_worker import open_time_zone
from tests.worlds import consent_to_campaigns, make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser


def test_an_admin_builds_a_segment_starts_a_campaign_and_sees_it_done(
    app, live_server, page, audit, log_in, translate, worker
):
    clinic = make_clinic(app, "demo", plugins=("fr", "outbox", "campaigns"))
    zone = open_time_zone()  # France's rules let campaign SMS go there now
    for n, attributes in enumerate(
        [["pregnancy_follow_up"], ["pregnancy_follow_up"], ["pregnancy_follow_up"], []]
    ):
        patient = make_patient(
            app,
            clinic,
            first_name=f"P{n}",
            phone=f"06123450{n:02d}",
            timezone=zone,
            attributes=attributes,
        )
        if n != 1:  # P1 gave no consent
            consent_to_campaigns(app, clinic, patient)
    base = live_server.url("demo")
    _ = translate("fr")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")

    page.goto(base + "/campaigns")
    audit()
    page.get_by_role("link", name=_("New campaign")).click()
    page.wait_for_url(base + "/campaigns/new")
    audit()
    total = page.locator("#count-total")
    expect(total).to_have_text(
        _(
            "%(total)s patients in the segment; %(recipients)s can be reached.",
            total=4,
            recipients=3,
        )
    )
    page.get_by_role("textbox", name=_("Name")).fill("Grippe 2026")
    page.get_by_role("checkbox", name=_("Pregnancy follow-up")).check()
    expect(total).to_have_text(
        _(
            "%(total)s patients in the segment; %(recipients)s can be reached.",
            total=3,
            recipients=2,
        )
    )
    expect(page.locator("#count-table tbody tr")).to_have_count(1)  # SMS, ticked already
    page.get_by_role("textbox", name=_("Text (%(language)s)", language=_("French"))).fill(
        "Bonjour {{ patient }}, la vaccination contre la grippe commence."
    )
    with page.expect_navigation():
        page.get_by_role("button", name=_("Save the draft")).click()
    audit()
    expect(page.locator("#preview-sms")).to_contain_text("STOP au 36180")

    with page.expect_navigation():
        page.get_by_role("button", name=_("Start the campaign")).click()
    audit()
    bar = page.get_by_role("progressbar", name=_("Messages handed to the providers or settled"))
    expect(page.locator("#campaign-state")).to_have_text(_("Done"), timeout=60_000)
    expect(bar).to_have_attribute("value", "2", timeout=60_000)
    expect(bar).to_have_attribute("max", "2")
    expect(page.locator("#figure-sent")).to_have_text("2")
    audit()
    width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], width
