"""An admin reads the audit log and checks an online sign-up, in Chromium, with axe-core on
every page: labelled filters, a table with headers, a chart that is a table too."""

from datetime import timedelta

import sqlalchemy as sa
from flask_babel import force_locale, pgettext
from playwright.sync_api import expect

from core.clinic.models import AuditEvent, Patient
from core.db import db, utcnow
from tenants.scoping import tenant_scope
from tests.worlds import make_clinic, make_patient, make_staff


def labels(live_server, first: str, last: str) -> tuple[str, str]:
    """The date range's labels in French (words with a context: "To" is also a recipient)."""
    with live_server.app.app_context(), force_locale("fr"):
        return pgettext("first day of a range", first), pgettext("last day of a range", last)


def test_an_admin_filters_the_log_and_checks_a_sign_up(
    app, live_server, page, audit, log_in, translate
):
    _ = translate("fr")  # a French clinic: its pages are in French
    clinic = make_clinic(app, "demo")
    lina = make_patient(app, clinic, first_name="Lina", last_name="Petit")
    with app.app_context(), tenant_scope(clinic.id):
        db.session.get(Patient, (clinic.id, lina.id)).review_needed = True
        for hours, action, detail in [(30, "otp.sent", "sms"), (2, "otp.failed", "wrong code (1)")]:
            at = utcnow() - timedelta(hours=hours)
            db.session.add(AuditEvent(actor="visitor", action=action, detail=detail, at=at))
        db.session.commit()
    base = live_server.url("demo")
    log_in(base, make_staff(app, clinic, "admin"), locale="fr")

    page.get_by_role("navigation").get_by_text(_("Settings")).click()  # the settings' menu
    page.get_by_role("navigation").get_by_role("link", name=_("Audit log")).click()
    page.wait_for_url(base + "/audit")
    audit()
    expect(page.get_by_role("figure", name=_("Events per day, last 14 days"))).to_be_visible()
    page.get_by_label(_("Who"), exact=True).select_option(label=_("Visitor"))
    page.get_by_label(_("What"), exact=True).select_option(value="otp.")
    page.get_by_role("button", name=_("Filter")).click()
    page.wait_for_url(base + "/audit?action=otp.&actor=visitor&from=&to=")
    audit()
    table = page.get_by_role("region", name=_("Audit events, newest first")).get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(3)  # the header and two events
    expect(table.get_by_role("row").nth(1)).to_contain_text(_("Wrong code entered"))
    expect(table.get_by_role("row").nth(2)).to_contain_text(_("Code sent"))

    first, last = labels(live_server, "From", "To")
    page.get_by_label(first, exact=True).fill("2026-03-05")
    page.get_by_label(last, exact=True).fill("2026-03-01")
    page.get_by_role("button", name=_("Filter")).click()
    audit()
    expect(page.get_by_label(last, exact=True)).to_have_attribute("aria-invalid", "true")

    page.goto(f"{base}/patients/{lina.id}")
    audit()
    notice = page.get_by_role("region", name=_("Signed up online — to check"))
    notice.get_by_role("button", name=_("Checked")).click()
    page.wait_for_url(f"{base}/patients/{lina.id}")
    audit()
    expect(page.get_by_role("status")).to_contain_text(_("Marked as checked."))
    expect(page.get_by_role("region", name=_("Signed up online — to check"))).to_have_count(0)
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(Patient.review_needed)) is False
