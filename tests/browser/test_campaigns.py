"""An admin builds a campaign's segment in Chromium, sees the live count follow the form and
the preview carry France's STOP mention; starts it, and watches the progress bar reach the end
as a real worker sends it; an operator starts a campaign across a country in the console and
watches each clinic's bar fill. Each page audited with axe-core.

The worker is another process, whose clock no test can travel: the campaign it sends is a
clinic's whose country runs the stand-in rules that allow every message at any hour
(``open_rules``, as in the campaign worker tests), served by an app and a worker that load
them, so that the test runs, and means the same, whatever the time and day.
"""

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from core.db import db
from core.plugins import DEFAULT_PLUGINS
from plugins.features.campaigns.models import Campaign
from tenants.scoping import tenant_scope
from tests.browser.conftest import serve
from tests.browser.test_clinic import make_operator, submit
from tests.plugins.features.test_campaigns import run_jobs
from tests.worlds import (
    consent_to_campaigns,
    make_clinic,
    make_patient,
    make_staff,
    start_worker,
    stop_worker,
)

pytestmark = pytest.mark.browser

OPEN_PLUGINS = (*DEFAULT_PLUGINS, "tests.plugins.features.open_rules")


@pytest.fixture(scope="module")
def open_server(app):
    """Relais with the stand-in rules too, served for Chromium."""
    with serve({"PLUGINS": OPEN_PLUGINS}) as server:
        yield server


@pytest.fixture
def open_worker():
    """A real ``relais worker`` with the stand-in rules too."""
    running = start_worker(OPEN_PLUGINS)
    yield running
    stop_worker(running)


def clinic_with_patients(app, plugins):
    """Clinic "demo" (French) with ``plugins``: three patients in pregnancy follow-up, one
    of whom (P1) gave no consent to campaigns, and one other."""
    clinic = make_clinic(app, "demo", plugins=plugins)
    for n, attributes in enumerate(
        [["pregnancy_follow_up"], ["pregnancy_follow_up"], ["pregnancy_follow_up"], []]
    ):
        patient = make_patient(
            app, clinic, first_name=f"P{n}", phone=f"06123450{n:02d}", attributes=attributes
        )
        if n != 1:
            consent_to_campaigns(app, clinic, patient)
    return clinic


def draft(page, audit, base, _) -> None:
    """On the clinic's pages: a new campaign to the patients in pregnancy follow-up, the
    live count following the form, saved as a draft."""
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
    expect(page.locator("#preview-sms")).to_contain_text("la vaccination contre la grippe commence")


def test_an_admin_builds_a_segment_and_the_preview_carries_france_s_stop_mention(
    app, live_server, page, audit, log_in, translate
):
    clinic = clinic_with_patients(app, ("fr", "outbox", "campaigns"))
    base = live_server.url("demo")
    _ = translate("fr")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")

    draft(page, audit, base, _)
    expect(page.locator("#preview-sms")).to_contain_text("STOP au 36180")
    expect(page.get_by_role("button", name=_("Start the campaign"))).to_be_enabled()


def test_an_admin_starts_a_campaign_and_sees_its_bar_reach_the_end(
    open_server, page, audit, log_in, translate, open_worker
):
    clinic = clinic_with_patients(open_server.app, ("open_rules", "outbox", "campaigns"))
    base = open_server.url("demo")
    _ = translate("fr")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(base, make_staff(open_server.app, clinic, "admin"), locale="fr")

    draft(page, audit, base, _)
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
