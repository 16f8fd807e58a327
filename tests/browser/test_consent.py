"""Consent in a real browser: staff note a paper consent, the patient stops messages with the
link of a message on their own phone, and staff see the opt-out; every page audited."""

import re

import pytest
from playwright.sync_api import expect

from core.clinic import consent
from core.clinic.models import ConsentAction
from tenants.scoping import tenant_scope
from tests.browser.conftest import DOCUMENT_ID, TIMEOUT_MS, Audit
from tests.worlds import make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser


def test_staff_record_a_paper_consent_then_the_patient_opts_out_by_link(
    app, live_server, browser, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo")
    patient = make_patient(app, clinic)
    base = live_server.url("demo")
    _ = translate("fr")  # a French clinic, a French patient

    log_in(base, make_staff(app, clinic, "secretary"), locale="fr")
    page.goto(f"{base}/patients/{patient.id}")
    audit()
    sms = consent_row(page, _, _("SMS"))
    expect(sms.get_by_role("cell").first).to_have_text(_("Not asked"))

    form = page.get_by_role("form", name=_("Record a consent the patient gave"))
    form.get_by_role("combobox", name=_("Channel")).select_option(label=_("SMS"))
    how = form.get_by_role("combobox", name=_("How the patient gave it"))
    how.select_option(label=_("Paper form signed by the patient"))
    with page.expect_navigation():
        form.get_by_role("button", name=_("Record the consent")).click()
    audit()
    expect(page.get_by_role("status")).to_have_text(
        _("Consent recorded for %(channel)s.", channel=_("SMS"))
    )
    given = sentence(_, "Given on %(date)s (%(method)s)", _("paper form"))
    expect(sms.get_by_role("cell").first).to_have_text(given)
    expect(page.locator(".opted-out")).to_have_count(0)

    # The patient, on their phone, opens the opt-out link of a campaign SMS.
    with live_server.app.app_context(), tenant_scope(clinic.id):
        link = consent.link(clinic, patient, "sms", ConsentAction.WITHDRAWN)
    assert link.startswith(base + "/consent/")
    phone = browser.new_context(locale="fr-FR")
    try:
        phone.set_default_timeout(TIMEOUT_MS)
        phone.add_init_script(DOCUMENT_ID)
        tab = phone.new_page()
        check = Audit(tab)
        tab.goto(link)
        check()
        expect(tab.get_by_role("heading", level=1)).to_have_text(_("Stop news and campaigns"))
        with tab.expect_navigation():
            tab.get_by_role("button", name=_("Stop these messages")).click()
        check()
        expect(tab.get_by_role("heading", level=1)).to_have_text(_("Messages stopped"))
        expect(tab.get_by_role("status")).to_have_text(
            _(
                "You will no longer receive news and campaigns from %(clinic)s %(by)s.",
                clinic=clinic.name,
                by=_("by SMS"),
            )
        )
        expect(tab.get_by_role("button")).to_have_count(1)  # the footer's language form only
        assert check.unchecked() is None
    finally:
        phone.close()

    # Staff see it, on top of the page and in the SMS row; the proof says who did what.
    page.reload()
    audit()
    banner = page.locator(".opted-out")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(_("Opted out of non-essential messages:"))
    opted_out = sentence(_, "Opted out on %(date)s (%(method)s)", _("link in a message"))
    expect(sms.get_by_role("cell").first).to_have_text(opted_out)
    expect(sms.get_by_role("button")).to_have_count(0)

    page.get_by_text(
        re.compile(re.escape(_("Proof of consent: every step (%(steps)d)", steps=2)))
    ).click()
    proof = page.locator("details.history table")
    expect(proof).to_be_visible()
    audit()
    expect(proof.locator("tbody tr").first).to_contain_text(_("The patient"))
    expect(proof.locator("tbody tr").last).to_contain_text(f"Secretary {clinic.slug}")


def consent_row(page, _, channel: str):
    """A channel's row of the consent table."""
    table = page.get_by_role("table", name=_("Consent to non-essential messages"))
    header = page.get_by_role("rowheader", name=channel, exact=True)
    return table.get_by_role("row").filter(has=header)


def sentence(_, message: str, method: str) -> re.Pattern:
    """A state in words with any date: "Given on 3 mars 2026 (formulaire papier)"."""
    text = _(message, date="\x00", method=method)
    return re.compile("^" + re.escape(text).replace("\x00", ".+") + "$")
