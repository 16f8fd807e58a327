"""Clinics' messaging rules and the console's warnings in a real browser, audited with axe-core."""

import pytest
from playwright.sync_api import expect

from core.clinic import settings
from tenants.scoping import tenant_scope
from tests.browser.test_clinic import make_operator, submit
from tests.worlds import make_clinic, make_staff

pytestmark = pytest.mark.browser


def test_admin_chooses_a_messaging_rule_for_their_clinic(
    app, live_server, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo", "FR", plugins=("fr",))
    base = live_server.url("demo")
    _ = translate("fr")  # a French clinic: its pages are in French
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")

    nav = page.get_by_role("navigation", name=_("Main"))
    nav.get_by_text(_("Settings")).click()  # the settings' menu
    nav.get_by_role("link", name=_("Messaging rules")).click()
    page.wait_for_url(base + "/settings/rules")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Messaging rules"))
    form = page.get_by_role("main").locator("form").first
    plugin = form.locator("input[name=plugin]").get_attribute("value")
    choice = form.get_by_role("combobox").first  # a yes/no rule: the regulation's
    name = choice.get_attribute("name")
    expect(choice).to_have_value("")  # following the country
    choice.select_option("yes")
    submit(page, form.get_by_role("button", name=_("Save")))
    audit()

    expect(page.get_by_role("status")).to_have_text(_("Settings saved."))
    expect(page.get_by_role("main").locator(f"select[name={name}]").first).to_have_value("yes")
    with live_server.app.app_context(), tenant_scope(clinic.id):
        assert settings.plugin_setting(clinic, plugin, name) is True


def test_operator_is_told_a_country_cannot_send_campaigns(app, live_server, page, audit, log_in):
    make_clinic(app, "praxis", "DE", plugins=())
    base = live_server.url("operator")
    log_in(base, make_operator(app))  # the console's home lists the clinics

    box = page.get_by_role("region", name="Needs your attention")
    expect(box).to_contain_text(
        "Germany: no regulation plugin is enabled, so its clinics can send only "
        "transactional messages (codes, reminders, replies); campaigns are refused."
    )
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plugins").click()
    page.wait_for_url(base + "/plugins")
    audit()
    expect(box).to_contain_text("Germany: no regulation plugin is enabled")

    regulation = next(
        i.title
        for i in live_server.app.extensions["relais"].plugins.info.values()
        if i.kind == "regulation"
    )
    submit(page, page.get_by_role("button", name=f"Enable {regulation} in Germany"))
    audit()
    expect(page.get_by_text("Germany: no regulation plugin is enabled")).to_have_count(0)
