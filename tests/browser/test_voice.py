"""Listening to a message before it is sent, in a real browser (voice_twilio's preview)."""

import pytest
from playwright.sync_api import expect

from tests.worlds import make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser


def test_staff_listen_to_a_message_with_the_keyboard_before_sending_it(
    app, live_server, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox", "voice_twilio"))
    patient = make_patient(app, clinic)
    base = live_server.url("demo")
    _ = translate("fr")
    log_in(base, make_staff(app, clinic, "secretary"), locale="fr")

    page.goto(f"{base}/patients/{patient.id}")
    audit()
    message = page.get_by_role("textbox", name=_("Message"), exact=True)
    message.fill("Votre rendez-vous du 31/03/2026 à 9h30 est confirmé.")
    player = page.locator(".voice-listen audio")
    expect(player).to_be_hidden()

    page.get_by_role("button", name=_("Listen")).focus()
    with page.expect_response(lambda r: r.url.endswith("/voice/preview.wav")) as preview:
        page.keyboard.press("Enter")

    assert preview.value.status == 200
    assert preview.value.header_value("content-type") == "audio/wav"
    expect(player).to_be_visible()
    # Awaited in the element's own handler: Playwright's wait_for_function polls with eval,
    # which the page's CSP refuses.
    duration = player.evaluate(
        """audio => audio.duration > 0 ? audio.duration : new Promise(done =>
            audio.addEventListener("loadedmetadata", () => done(audio.duration), {once: true}))"""
    )
    assert 3 < duration < 20  # seconds of speech
    audit()  # the page with its player shown


def test_an_empty_message_is_said_so_next_to_the_button(
    app, live_server, page, audit, log_in, translate
):
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox", "voice_twilio"))
    patient = make_patient(app, clinic)
    base = live_server.url("demo")
    _ = translate("fr")
    log_in(base, make_staff(app, clinic, "secretary"), locale="fr")

    page.goto(f"{base}/patients/{patient.id}")
    audit()
    page.get_by_role("button", name=_("Listen")).click()

    status = page.locator(".voice-listen [role=status]")
    expect(status).to_have_text(_("Write the message to listen to."))
    expect(page.locator(".voice-listen audio")).to_be_hidden()
