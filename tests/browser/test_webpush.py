"""A patient's notifications in a real browser: the access link, the pages (audited with
axe-core), the service worker, and a push delivered to it through the DevTools protocol."""

import json
import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from core.clinic import settings
from core.clinic.models import Patient
from core.db import db
from core.delivery import dispatch, outbox
from core.delivery.access_links import make_token
from core.delivery.models import Message, MessageStatus
from plugins.channels.webpush import subscriptions
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.push_service import FakePushService
from tests.worlds import make_clinic, make_patient, wait_until

pytestmark = pytest.mark.browser

TEXT = "Votre rendez-vous du 4 mai à 9 h est confirmé."


@pytest.fixture
def clinic(app):
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox", "webpush"))
    result = app.test_cli_runner().invoke(args=["webpush", "keys"])
    assert result.exit_code == 0, result.output
    return clinic


def test_a_patient_turns_notifications_on_and_the_worker_acknowledges_a_push(
    app, live_server, page, audit, translate, clinic
):
    base = live_server.url("demo")
    _ = translate("fr")  # a French clinic, a French patient
    patient = make_patient(app, clinic)
    with live_server.app.app_context():
        token = make_token(clinic, patient)

    page.goto(f"{base}/me/access/{token}")
    audit()
    page.get_by_role("button", name=_("Continue")).click()
    page.wait_for_url(base + "/me/")
    audit()
    expect(page.get_by_role("heading", level=1)).to_have_text(_("Hello %(name)s", name="Jeanne"))
    page.get_by_role("link", name=_("Turn notifications on or off")).click()
    page.wait_for_url(base + "/me/notifications")
    audit()

    # The service worker registers, for the patient's pages.
    expect(page.locator("#push")).to_have_attribute("data-ready", "true")
    scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
    assert scope == base + "/me/"
    status = page.get_by_role("status")
    expect(status).to_have_text(_("Notifications are off for this device."))

    # Without the permission, the page says how to give it.
    page.get_by_role("button", name=_("Turn on"), exact=True).click()
    expect(status).to_have_text(
        _(
            "Notifications are blocked for this site. Allow them in your browser's site "
            "settings, then try again."
        )
    )

    # Headless Chromium here reaches no push service: the page says so, clearly.
    page.context.grant_permissions(["notifications"], origin=base)
    page.get_by_role("button", name=_("Turn on"), exact=True).click()
    expect(status).to_have_text(
        _(
            "This browser could not reach its push service, so notifications cannot be turned "
            "on now. Try again later, or receive your messages by SMS."
        )
    )
    expect(status).to_have_class(re.compile(r"\berror\b"))
    audit()

    # A push as the worker sends it, for a message in the outbox: the provider encrypts it for
    # a device of the fake push service, and the browser's service worker gets that payload.
    with FakePushService() as push, live_server.app.app_context():
        with system_scope():
            public = settings.deployment("webpush")["vapid_public_key"]
            settings.save("FR", "webpush", {"contact": "mailto:ops@relais.example"})
            db.session.commit()
        with tenant_scope(clinic.id):
            who = db.session.get(Patient, (clinic.id, patient.id))
            subscriptions.subscribe(who, push.device(server_key=public).info(), "", [push.origin])
            message_id = outbox.send(clinic, who, "transactional", TEXT, {}, ["push"]).id
            db.session.commit()
            dispatch.deliver([str(message_id)])
        [payload] = push.payloads()
    assert payload["ack"].startswith(base + "/")  # same origin as the service worker

    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    wait_until(lambda: page.evaluate("1") and any(r["scopeURL"] == scope for r in registrations))
    registration = next(r for r in registrations if r["scopeURL"] == scope)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": base,
            "registrationId": registration["registrationId"],
            "data": json.dumps(payload),
        },
    )

    def delivered() -> bool:
        page.evaluate("1")  # let the browser run meanwhile
        with live_server.app.app_context(), tenant_scope(clinic.id):
            status = db.session.scalar(sa.select(Message.status).where(Message.id == message_id))
            db.session.rollback()
        return status == MessageStatus.DELIVERED

    wait_until(delivered)
    shown = page.evaluate(
        "async () => (await (await navigator.serviceWorker.ready).getNotifications())"
        ".map(n => [n.title, n.body, n.tag])"
    )
    title = _("Message from %(clinic)s", clinic="Clinic demo")  # no subject: the clinic's
    assert shown == [[title, TEXT, str(message_id)]]
