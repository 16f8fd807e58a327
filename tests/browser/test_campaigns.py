"""An admin builds a campaign's segment in Chromium, sees the live count follow the form,
starts it, and watches the progress bar reach the end as a real worker sends it; an operator
starts a campaign across a country in the console and watches each clinic's bar fill. Each
page audited with axe-core."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from core.db import db
from plugins.features.campaigns.models import Campaign
from plugins.regulations.fr.plugin import hooks as france
from tenants.scoping import tenant_scope
from tests.browser.test_clinic import make_operator, submit
from tests.plugins.features.test_campaigns import run_jobs
from tests.worlds import consent_to_campaigns, make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser


def open_time_zone() -> str:
    """A time zone where campaign SMS may go for the next half hour under France's rules."""
    now = datetime.now(UTC)
    for hours in range(-12, 15):
        zone = f"Etc/GMT{'+' if hours <= 0 else '-'}{abs(hours)}"  # POSIX signs are reversed
        if all(
            france.quiet_hours.next_allowed(at, zone, "FR") == at
            for at in (now, now + timedelta(minutes=30))
        ):
            return zone
    pytest.skip("no time zone is within France's hours for campaigns now")


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


def test_an_operator_starts_a_campaign_across_a_country_and_sees_each_clinic_s_bar(
    app, live_server, page, audit, log_in
):
    clinics = {
        slug: make_clinic(app, slug, plugins=("fr", "outbox", "campaigns"))
        for slug in ("demo", "other")
    }
    for slug, count in (("demo", 3), ("other", 2)):
        for n in range(count):
            patient = make_patient(
                app, clinics[slug], first_name=f"P{n}", phone=f"06123450{n:02d}", sex="female"
            )
            consent_to_campaigns(app, clinics[slug], patient)
    base = live_server.url("operator")
    log_in(base, make_operator(app))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    page.wait_for_url(base + "/campaigns")
    audit()
    expect(page.get_by_role("combobox", name="Country")).to_have_value("FR")  # the only one
    page.get_by_role("textbox", name="Name").fill("Octobre rose")
    page.get_by_role("checkbox", name="Female").check()
    text = page.get_by_role("textbox", name="Text (French)")
    text.fill("Bonjour {{ prenom }}, octobre est le mois du dépistage.")
    submit(page, page.get_by_role("button", name="Start in every clinic"))
    audit()  # refused, naming the field, nothing started
    expect(text).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("checkbox", name="Female")).to_be_checked()  # the form kept
    text.fill("Bonjour {{ patient }}, octobre est le mois du dépistage.")
    submit(page, page.get_by_role("button", name="Start in every clinic"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Octobre rose")
    audit()
    demo = page.get_by_role("progressbar", name="Written for Clinic demo")
    other = page.get_by_role("progressbar", name="Written for Clinic other")
    expect(demo).to_have_attribute("max", "3")
    expect(demo).to_have_attribute("value", "0")

    for clinic in clinics.values():  # what the workers do
        with app.app_context(), tenant_scope(clinic.id):
            campaign_id = str(db.session.scalar(sa.select(Campaign.id)))
        run_jobs(app, clinic, campaign_id)
    expect(demo).to_have_attribute("value", "3", timeout=20_000)
    expect(other).to_have_attribute("value", "2", timeout=20_000)
    expect(page.locator("#clinic-demo [data-figure=state]")).to_have_text("Done")
    expect(page.locator("#clinic-other [data-figure=written]")).to_have_text("2 of 2")
    audit()
