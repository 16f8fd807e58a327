"""The operator invites a clinic's first admin in Chromium; the invited person opens the
e-mailed link, chooses a password and logs in with the keyboard and mouse as staff do. Every
console page, and the invitation's own pages, have no axe-core violation of any impact."""

import re

import pyotp
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from core.db import db
from core.delivery import dispatch
from core.delivery.models import Message
from core.delivery.routing import set_route
from plugins.channels.outbox.plugin import OutboxDelivery
from tenants.scoping import system_scope, tenant_scope
from tests.browser.test_clinic import expect_invalid, make_operator, submit
from tests.worlds import make_clinic

pytestmark = pytest.mark.browser

PASSWORD_CHOSEN = "a long and new passphrase"


@pytest.fixture
def clinic(app):
    return make_clinic(app, "rive", "FR", plugins=("fr", "outbox"))


def delivered_link(app, clinic) -> str:
    """Send what the outbox holds (the worker's job function); the link in the e-mail."""
    with app.app_context(), tenant_scope(clinic.id):
        dispatch.deliver([str(i) for i in db.session.scalars(sa.select(Message.id))])
        text = db.session.scalars(
            sa.select(OutboxDelivery.text).order_by(OutboxDelivery.at.desc())
        ).first()
    return re.search(r"http://rive\.localhost:\d+/invitation/\S+", text).group(0)


def test_invited_admin_chooses_a_password_then_enrols(
    app, live_server, page, audit, log_in, translate, clinic
):
    base = live_server.url("operator")
    log_in(base, make_operator(app))
    page.get_by_role("link", name="Invite the first admin (Clinic rive)").click()
    page.wait_for_url(base + "/clinics/rive/invitation")
    audit(strict=True)
    email = page.get_by_role("textbox", name="E-mail", exact=True)
    page.get_by_role("textbox", name="Name", exact=True).fill("Claire Martin")
    email.fill("claire@")
    submit(page, page.get_by_role("button", name="Send the invitation"))
    audit(strict=True)
    expect_invalid(email, "This is not a valid e-mail address.")
    email.fill("claire@rive.example")
    submit(page, page.get_by_role("button", name="Send the invitation"))
    audit(strict=True)
    expect(page.get_by_role("status")).to_have_text("Invitation sent to claire@rive.example.")
    expect(page.locator("dl.facts")).to_contain_text("Claire Martin <claire@rive.example>")

    # The invited person, in French as their clinic's pages are.
    _ = translate("fr")
    link = delivered_link(app, clinic)
    page.context.clear_cookies()
    page.goto(link)
    audit(strict=True)
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Choose your password"))
    expect(page.get_by_role("textbox", name=_("E-mail"), exact=True)).to_have_value(
        "claire@rive.example"
    )
    password = page.get_by_role("textbox", name=_("Password"), exact=True)
    password.fill("short")
    page.get_by_role("textbox", name=_("Password again"), exact=True).fill("short")
    submit(page, page.get_by_role("button", name=_("Set my password")))
    audit(strict=True)
    expect_invalid(password, _("The password must have at least %(n)d characters.", n=12))
    password.fill(PASSWORD_CHOSEN)
    page.get_by_role("textbox", name=_("Password again"), exact=True).fill(PASSWORD_CHOSEN)
    page.get_by_role("button", name=_("Set my password")).click()
    clinic_base = live_server.url("rive")
    page.wait_for_url(clinic_base + "/login")
    audit(strict=True)
    expect(page.get_by_role("status")).to_have_text(
        _("Your password is set. Log in with it to finish setting up your account.")
    )

    page.get_by_role("textbox", name=_("E-mail"), exact=True).fill("claire@rive.example")
    page.get_by_role("textbox", name=_("Password"), exact=True).fill(PASSWORD_CHOSEN)
    page.get_by_role("button", name=_("Continue")).click()
    page.wait_for_url(clinic_base + "/login/enrol")
    audit(strict=True)
    secret = page.get_by_test_id("totp-secret").inner_text()
    page.get_by_role("textbox", name=_("Code"), exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("textbox", name=_("Code"), exact=True).press("Enter")
    page.wait_for_url(clinic_base + "/")
    audit(strict=True)
    expect(page.get_by_role("banner")).to_contain_text("Clinic rive")

    # The same link again: a page that says why, and where to go.
    page.goto(link)
    audit(strict=True)
    expect(page.get_by_role("alert")).to_have_text(
        _("This invitation was already used: log in with your e-mail address and password.")
    )


def test_every_console_page_has_no_axe_violation_of_any_impact(
    app, live_server, page, audit, log_in, clinic
):
    with app.app_context(), system_scope():
        set_route("FR", "outbox_sms", 1, 100)  # a route: the providers page lists it
        db.session.commit()
    base = live_server.url("operator")
    log_in(base, make_operator(app))
    audit(strict=True)  # the clinics
    for path in (
        "/plugins",
        "/plugins/fr/settings/FR",
        "/providers",
        "/kpis",
        "/kpis?window=custom&from=bad",
        "/clinics/rive/invitation",
    ):
        page.goto(base + path)
        audit(strict=True)
    # A clinic with an invitation, and the new-clinic form with its errors.
    page.get_by_role("textbox", name="Name", exact=True).fill("Claire Martin")
    page.get_by_role("textbox", name="E-mail", exact=True).fill("claire@rive.example")
    submit(page, page.get_by_role("button", name="Send the invitation"))
    audit(strict=True)
    page.goto(base + "/")
    audit(strict=True)
    expect(page.get_by_role("row").filter(has_text="Clinic rive")).to_contain_text(
        "Claire Martin: invited"
    )
    page.get_by_role("textbox", name="First admin's e-mail").fill("not an address")
    submit(page, page.get_by_role("button", name="Create clinic"))
    audit(strict=True)
    expect_invalid(page.get_by_role("textbox", name="Name", exact=True), "This field is required.")
