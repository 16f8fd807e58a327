"""The world of the messaging tests: a French clinic with messaging, its practitioner, a
patient of theirs logged in on their own page, staff logged in on the inbox."""

import re

import sqlalchemy as sa

from core.clinic.models import AuditEvent, Patient
from core.db import db
from core.delivery import access_links
from plugins.channels.outbox.plugin import OutboxDelivery
from tenants.scoping import tenant_scope
from tests.worlds import (
    Account,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_patient,
    make_staff,
)

PLUGINS = ("fr", "messaging", "outbox")  # outbox: the channel notifications land in
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64  # a Windows program, whatever its name


def patient_browser(app, tenant, patient) -> HostClient:
    """A patient's browser, in through an access link (as sent by staff)."""
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        token = access_links.make_token(tenant, who)
    browser = client_for(app, tenant.slug)
    path = f"/me/access/{token}"
    page = browser.post(path, data={"csrf_token": csrf_token(browser, path)})
    assert page.status_code == 302, page.text
    return browser


def staff_browser(app, tenant, account, lang="en") -> HostClient:
    """A staff member's browser, logged in, its pages in ``lang``."""
    browser = client_for(app, tenant.slug)
    log_in(browser, account)
    english = {"lang": lang, "next": "/", "csrf_token": csrf_token(browser, "/")}
    assert browser.post("/language", data=english).status_code == 302
    return browser


def post(client: HostClient, path: str, form_page: str | None = None, files=(), **data):
    """A form posted as a browser does, with the CSRF token of the page it is on."""
    data["csrf_token"] = csrf_token(client, form_page or path)
    if files:
        data["attachments"] = list(files)
        return client.post(path, data=data, content_type="multipart/form-data")
    return client.post(path, data=data)


def conversation_id_of(response) -> str:
    return re.search(r"/me/messages/([0-9a-f-]{36})", response.headers["Location"]).group(1)


def deliveries(app, tenant) -> list[tuple[str, str, str]]:
    """What reached the outbox channel: (channel, recipient, text)."""
    with app.app_context(), tenant_scope(tenant.id):
        rows = db.session.execute(
            sa.select(OutboxDelivery.channel, OutboxDelivery.recipient, OutboxDelivery.text)
        )
        return [tuple(r) for r in rows]


def audit_actions(app, tenant) -> list[tuple[str, str]]:
    with app.app_context(), tenant_scope(tenant.id):
        rows = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.object_id).order_by(AuditEvent.at)
        )
        return [(a, str(o)) for a, o in rows]


def make_doctor(app, tenant, name="dr") -> Account:
    return make_staff(app, tenant, "practitioner", email=f"{name}@{tenant.slug}.example")


def make_patient_of(app, tenant, doctors, **data) -> Patient:
    return make_patient(app, tenant, practitioner_ids=[str(d.id) for d in doctors], **data)
