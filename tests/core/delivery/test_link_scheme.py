"""Links Relais sends out (patients' links, providers' callbacks) use the deployment's scheme
(``PREFERRED_URL_SCHEME``): https behind a proxy that ends TLS and speaks plain http to
gunicorn, whether they are built in a request or in a worker."""

import pytest
import sqlalchemy as sa

from core.app import create_app
from core.db import db
from core.delivery import dispatch, outbox
from core.delivery.models import Message
from tenants.scoping import tenant_scope
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
    route_through_twilio,
)

SENDER = "+33939030101"


@pytest.fixture
def https_app(app):
    """A deployment whose proxy ends TLS: requests reach the app over http."""
    application = create_app(
        {**TEST_CONFIG, "PREFERRED_URL_SCHEME": "https", "SESSION_COOKIE_SECURE": False}
    )
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_an_access_link_sent_from_a_page_served_over_http_behind_tls_is_https(https_app):
    clinic = make_clinic(https_app, "demo", "FR", plugins=("fr", "outbox"))
    patient = make_patient(https_app, clinic)
    staff = https_app.test_client()
    staff.base_url = f"http://{clinic.slug}.relais.test"  # what the proxy forwards
    log_in(staff, make_staff(https_app, clinic, "secretary"))
    path = f"/patients/{patient.id}"

    sent = staff.post(f"{path}/access-link", data={"csrf_token": csrf_token(staff, path)})

    assert sent.status_code == 303
    with https_app.app_context(), tenant_scope(clinic.id):
        [message] = db.session.scalars(sa.select(Message)).all()
        text = message.content["text"]
    assert f"https://{clinic.slug}.relais.test/me/access/" in text
    assert "http://" not in text


def test_a_providers_status_callback_is_https(https_app, twilio):
    clinic = make_clinic(https_app, "demo", "FR", plugins=("fr", "sms_twilio"))
    route_through_twilio(https_app, "sms", twilio, SENDER)
    patient = make_patient(https_app, clinic)
    with https_app.app_context(), tenant_scope(clinic.id):
        message_id = outbox.send(clinic, patient, "transactional", "Bonjour", {}, ["sms"]).id
        db.session.commit()
    with https_app.app_context(), tenant_scope(clinic.id):  # as a worker runs its job
        dispatch.deliver([str(message_id)])

    [request] = twilio.requests
    assert request["form"]["StatusCallback"] == (
        f"https://{clinic.slug}.relais.test/webhooks/twilio_sms/receipts"
    )
