"""An admin makes a test key on the API keys page and reads the clinic's usage, in a real
browser, audited with axe-core, on a phone's width too."""

import re

import pytest
from playwright.sync_api import expect

from core.web.cli import main
from tests.browser.test_clinic import submit
from tests.browser.test_overflow import too_wide
from tests.worlds import client_for, make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser


def test_admin_makes_a_test_key_and_reads_the_usage(
    app, live_server, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox"))
    patient = make_patient(app, clinic)
    base = live_server.url("demo")
    _ = translate("fr")
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")

    page.goto(base + "/settings/api-keys")
    audit()
    form = page.get_by_role("main").locator("form.inline")
    form.get_by_label(_("What uses it")).fill("Logiciel de test")
    form.get_by_label(_("Kind")).select_option("test")
    submit(page, form.get_by_role("button", name=_("Create key")))
    audit()
    token = page.get_by_test_id("new-key").inner_text()
    assert token.startswith("rl_test_")

    result = app.test_cli_runner().invoke(
        main, ["limits", "set", "--country", "FR", "per_day_sms=8"]
    )
    assert result.exit_code == 0, result.output
    api = client_for(app, clinic.slug)
    body = {"patient_id": str(patient.id), "purpose": "reminder", "template": "RDV demain"}
    for _n in range(2):
        sent = api.post("/api/v1/messages", json=body, headers={"Authorization": f"Bearer {token}"})
        assert sent.status_code == 202

    nav = page.get_by_role("navigation", name=_("Main"))
    nav.get_by_text(_("Settings")).click()
    nav.get_by_role("link", name=_("Usage")).click()
    page.wait_for_url(base + "/settings/usage")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Usage"))
    meter = page.locator("meter")
    expect(meter).to_have_attribute("value", "2")
    expect(meter).to_have_attribute("max", "8")
    expect(page.get_by_role("main")).to_contain_text(re.compile(r"25,0\s?%"))
    assert too_wide(page) == []
