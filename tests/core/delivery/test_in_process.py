"""The first run has no Redis: staff send from a patient's page, the process delivers."""

import pytest

from core.app import create_app
from core.db import db
from core.delivery.sweeper import Sweeper
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)


@pytest.fixture
def app_without_redis(app):
    application = create_app({**TEST_CONFIG, "REDIS_URL": None})
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_message_from_the_patient_page_lands_in_the_outbox(app_without_redis):
    app = app_without_redis
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox"))
    patient = make_patient(app, clinic, phone="0612345678")
    client = client_for(app, "demo")
    log_in(client, make_staff(app, clinic, "secretary"))
    path = f"/patients/{patient.id}"
    response = client.post(
        f"{path}/messages",
        data={
            "text": "Votre ordonnance est prête",
            "channels": ["sms"],
            "csrf_token": csrf_token(client, path),
        },
    )
    assert response.status_code == 303
    assert "Votre ordonnance" not in client.get("/outbox").text  # not sent from the request

    Sweeper(app).tick()  # what the demo's background thread does every second

    page = client.get("/outbox").text
    # The number in the clinic's national format.
    assert "Votre ordonnance est prête" in page and "06 12 34 56 78" in page


def test_an_empty_message_is_refused(app_without_redis):
    app = app_without_redis
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox"))
    patient = make_patient(app, clinic)
    client = client_for(app, "demo")
    log_in(client, make_staff(app, clinic, "secretary"))
    path = f"/patients/{patient.id}"
    client.post(f"{path}/messages", data={"text": " ", "csrf_token": csrf_token(client, path)})
    Sweeper(app).tick()
    assert "06 12 34 56 78" not in client.get("/outbox").text
