"""A patient signs up with a code by SMS, in a real browser, on their clinic's subdomain.

The code really travels: the page puts it in the outbox, a real ``relais worker`` takes it
from the ``otp`` queue and sends it through the ``sms_twilio`` plugin to the loopback Twilio,
where the test reads it as the patient reads their phone. Every page is audited with
axe-core, and the patient goes through with the keyboard (the birth date is set rather than
typed: typed digits fill the segments of the browser's own date format, whatever the page).
"""

import re
import time

import pytest
import sqlalchemy as sa
from playwright.sync_api import Locator, Page, expect

from core.clinic.models import Patient
from core.db import db
from core.delivery.models import Message, MessageStatus
from tenants.scoping import tenant_scope
from tests.browser.test_clinic import expect_invalid
from tests.fakes.twilio import FakeTwilio
from tests.worlds import make_clinic, make_patient, route_through_twilio

pytestmark = pytest.mark.browser

SENDER = "+33939030101"  # the clinic's Twilio number
MOBILE = "06 12 34 56 78"  # as the patient types it
E164 = "+33612345678"


@pytest.fixture
def clinic(app, twilio, worker):
    """A French clinic whose SMS go through (the fake) Twilio, with sign-up by code."""
    tenant = make_clinic(app, "demo", "FR", plugins=("fr", "sms_twilio", "otp"))
    route_through_twilio(app, "sms", twilio, SENDER)
    return tenant


def test_a_patient_signs_up_with_a_code_read_from_their_sms(
    app, live_server, page, audit, translate, clinic, twilio
):
    base = live_server.url("demo")
    _ = translate("fr")  # a French clinic: its pages are in French
    page.clock.install()  # the page's countdown runs on a clock the test moves

    ask_for_a_code(page, audit, _, base)
    code = code_received(app, twilio, _, clinic)

    # No new code for 30 s: the page counts down, then offers one again.
    again = page.get_by_role("button", name=_("Send a new code"))
    call = page.get_by_role("button", name=_("Call me instead"))
    wait = page.locator("#wait")
    expect(again).to_be_disabled()
    expect(call).to_be_disabled()
    expect(wait).to_have_text(sentence(_("You can ask for a new code in %(n)s s.", n="\x00")))
    page.clock.run_for("00:31")  # every tick of the countdown
    expect(again).to_be_enabled()
    expect(call).to_be_enabled()
    expect(wait).to_be_hidden()

    # A wrong code first: said next to the field, with the tries left.
    field = page.get_by_role("textbox", name=_("Code"), exact=True)
    expect(field).to_be_focused()
    page.keyboard.type(wrong(code))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    audit()
    left = _(
        "This code is not right. You can try %(num)d more time.",
        "This code is not right. You can try %(num)d more times.",
        4,
    )
    expect_invalid(field, left)
    expect(field).to_be_focused()
    expect(field).to_have_value("")
    page.keyboard.type(code)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # A number without an account: who the patient is, with a birth date in the future first.
    page.wait_for_url(base + "/me/signup")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        _("Create your account at %(clinic)s", clinic=clinic.name)
    )
    first_name = page.get_by_role("textbox", name=_("First name"), exact=True)
    birth_date = page.get_by_label(_("Birth date"))  # "Birth date *"
    email = page.get_by_role("textbox", name=_("E-mail (optional)"))
    language = page.get_by_role("combobox", name=_("Language of your messages"))
    expect(first_name).to_be_focused()
    page.keyboard.type("Jeanne")
    page.keyboard.press("Tab")
    page.keyboard.type("Durand")
    page.keyboard.press("Tab")
    expect(birth_date).to_be_focused()
    # Typed digits land in the segments of the browser's own date format: set the date.
    birth_date.fill("2058-03-14")
    email.fill("jeanne.durand@example.org")
    page.keyboard.press("Tab")
    expect(language).to_be_focused()
    expect(language).to_have_value("fr")  # the page's language
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=_("Create my account"))).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")

    audit()
    expect_invalid(birth_date, _("This birth date is not possible."))
    expect(birth_date).to_be_focused()  # where the patient has to act
    expect(first_name).to_have_value("Jeanne")  # what was typed stays
    expect(email).to_have_value("jeanne.durand@example.org")
    birth_date.fill("1958-03-14")
    with page.expect_navigation():
        page.keyboard.press("Enter")

    page.wait_for_url(base + "/me/")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Hello %(name)s", name="Jeanne"))
    expect(page.locator("header .who")).to_have_text("Jeanne Durand")

    [patient] = patients(app, clinic)
    assert (patient.phone, str(patient.birth_date)) == (E164, "1958-03-14")
    assert (patient.email, patient.language) == ("jeanne.durand@example.org", "fr")
    assert patient.signed_up_at is not None and patient.review_needed  # staff review it
    assert_one_code_sent_by_twilio(app, clinic)


def test_a_patient_the_clinic_knows_gets_their_record(
    app, live_server, page, audit, translate, clinic, twilio
):
    known = make_patient(
        app, clinic, first_name="Jeanne", last_name="Durand", birth_date="1958-03-14"
    )
    base = live_server.url("demo")
    _ = translate("fr")

    ask_for_a_code(page, audit, _, base)
    page.keyboard.type(code_received(app, twilio, _, clinic))
    with page.expect_navigation():
        page.keyboard.press("Enter")

    page.wait_for_url(base + "/me/signup")
    audit()
    page.keyboard.type("Jeannette")  # not as the clinic wrote it: the record's name stays
    page.keyboard.press("Tab")
    page.keyboard.type("Dupont")
    page.keyboard.press("Tab")
    page.get_by_label(_("Birth date")).fill("1958-03-14")  # the one the clinic has
    with page.expect_navigation():
        page.keyboard.press("Enter")

    page.wait_for_url(base + "/me/")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Hello %(name)s", name="Jeanne"))
    expect(page.locator("header .who")).to_have_text("Jeanne Durand")

    [patient] = patients(app, clinic)  # no new record
    assert patient.id == known.id
    assert patient.signed_up_at is not None and not patient.review_needed
    assert_one_code_sent_by_twilio(app, clinic)


def ask_for_a_code(page: Page, audit, _, base: str) -> None:
    """From the signed-out patient page to the code's page, with the keyboard."""
    page.goto(base + "/me/")
    audit()
    link = page.get_by_role("link", name=_("Sign up or log in with your phone"))
    tab_to(page, link)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    page.wait_for_url(base + "/me/login")
    audit()
    phone = page.get_by_role("textbox", name=_("Mobile or home phone"))  # "... *"
    expect(phone).to_be_focused()
    page.keyboard.type(MOBILE)
    with page.expect_navigation():
        page.keyboard.press("Enter")  # the form's first button: "Send me a code"

    page.wait_for_url(base + "/me/login/code")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Enter your code"))
    expect(page.get_by_role("status")).to_have_text(
        _("We sent a 6-digit code by SMS to %(phone)s. It works for 5 minutes.", phone="•• •• 78")
    )
    expect(page.get_by_role("textbox", name=_("Code"), exact=True)).to_be_focused()


def code_received(app, twilio: FakeTwilio, _, clinic) -> str:
    """The code in the one SMS the patient's phone got, in the clinic's language."""
    deadline = time.monotonic() + 15
    while not twilio.sent_to(E164):
        if time.monotonic() > deadline:
            raise AssertionError(f"no SMS reached Twilio; the outbox has {outbox(app, clinic)}")
        time.sleep(0.05)
    [sms] = twilio.sent_to(E164)
    assert sms.from_ == SENDER
    text = _(
        "Your code is %(code)s (%(clinic)s). It expires in 5 minutes. Never share it.",
        code="\x00",
        clinic=clinic.name,
    )
    match = re.fullmatch(re.escape(text).replace("\x00", "([0-9]{6})"), sms.body)
    assert match, sms.body
    return match.group(1)


def sentence(text: str) -> re.Pattern:
    """A sentence with any number where ``\\x00`` stands."""
    return re.compile("^" + re.escape(text).replace("\x00", "[0-9]+") + "$")


def wrong(code: str) -> str:
    """Another code of 6 digits."""
    return str((int(code[0]) + 1) % 10) + code[1:]


def tab_to(page: Page, target: Locator, presses: int = 20) -> None:
    """Press Tab until ``target`` has the focus: it is reachable with the keyboard."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} not reached in {presses} presses of Tab")


def patients(app, clinic) -> list[Patient]:
    with app.app_context(), tenant_scope(clinic.id):
        found = db.session.scalars(sa.select(Patient)).all()
        db.session.expunge_all()
    return list(found)


def outbox(app, clinic) -> list[tuple]:
    """The clinic's messages: purpose, provider, patient, status."""
    with app.app_context(), tenant_scope(clinic.id):
        columns = (Message.purpose, Message.provider, Message.patient_id, Message.status)
        return [tuple(row) for row in db.session.execute(sa.select(*columns))]


def assert_one_code_sent_by_twilio(app, clinic) -> None:
    """The outbox holds one message, the code, to a number (no patient yet), and the
    sms_twilio provider took it."""
    [(purpose, provider, to_patient, status)] = outbox(app, clinic)
    assert (purpose, provider, to_patient) == ("otp", "twilio_sms", None)
    assert status in (MessageStatus.SENT, MessageStatus.DELIVERED)
