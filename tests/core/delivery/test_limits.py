"""Per-clinic sending limits: a minute's budget and a day's per channel, each purpose its
own, set by the operator per country with per-clinic overrides; 429 with Retry-After."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import apikeys
from core.db import db
from core.delivery.models import Message
from core.web.cli import main
from tenants.scoping import tenant_scope
from tests.worlds import (
    OPEN_HOURS,
    client_for,
    consent_to_campaigns,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("fr", "outbox"))


@pytest.fixture
def api(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(app, clinic.slug)

    def call(method, path, **kwargs):
        return client.open(
            f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )

    return call


@pytest.fixture
def patient(app, clinic):
    patient = make_patient(app, clinic)
    consent_to_campaigns(app, clinic, patient)
    return patient


def limit(runner, *values, where=("--country", "FR")):
    result = runner.invoke(main, ["limits", "set", *where, *values])
    assert result.exit_code == 0, result.output
    return result.output


def send(api, patient, purpose="campaign"):
    body = {"patient_id": str(patient.id), "purpose": purpose, "template": "Vaccination ouverte."}
    return api("POST", "/messages", json=body)


def written(app, clinic) -> int:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalar(sa.select(sa.func.count()).select_from(Message))


def test_the_message_after_a_minutes_budget_gets_429_with_retry_after(
    app, clinic, api, patient, runner
):
    limit(runner, "per_minute=3")
    with time_machine.travel(OPEN_HOURS, tick=False) as clock:
        assert [send(api, patient).status_code for _ in range(3)] == [202] * 3
        refused = send(api, patient)
        assert refused.status_code == 429
        assert refused.json["error"]["code"] == "too_many_requests"
        assert 1 <= int(refused.headers["Retry-After"]) <= 20  # a token comes back in 20 s
        assert written(app, clinic) == 3  # the refused one was not written

        clock.shift(timedelta(seconds=20))  # the bucket refilled one message's worth
        assert send(api, patient).status_code == 202
        assert send(api, patient).status_code == 429


def test_codes_and_reminders_go_through_while_campaigns_are_over_quota(
    app, clinic, api, patient, runner
):
    limit(runner, "per_minute=2", "per_day_sms=2")
    with time_machine.travel(OPEN_HOURS, tick=False):
        assert [send(api, patient).status_code for _ in range(3)] == [202, 202, 429]
        assert send(api, patient, "otp").status_code == 202
        assert send(api, patient, "reminder").status_code == 202
        assert send(api, patient, "reminder").status_code == 202
        over = send(api, patient, "reminder")  # the reminders' own budget is spent now
        assert over.status_code == 429


def test_a_days_budget_per_channel_waits_until_midnight(app, clinic, api, patient, runner):
    limit(runner, "per_day_sms=1")
    with time_machine.travel(OPEN_HOURS, tick=False) as clock:  # 10:00 UTC
        assert send(api, patient).status_code == 202
        refused = send(api, patient)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) == 14 * 3600  # until midnight UTC
        email = {**_email_body(patient)}
        assert api("POST", "/messages", json=email).status_code != 429  # another channel
        clock.shift(timedelta(hours=14))
        assert send(api, patient).status_code == 202


def _email_body(patient):
    return {
        "patient_id": str(patient.id),
        "purpose": "transactional",
        "template": "Hi",
        "channels": ["email"],
    }


def test_a_clinics_own_limit_beats_its_countrys(app, clinic, api, patient, runner):
    other = make_clinic(app, "other", "FR", plugins=("fr", "outbox"))
    limit(runner, "per_minute=1")
    limit(runner, "per_minute=3", where=("--clinic", clinic.slug))
    with time_machine.travel(OPEN_HOURS, tick=False):
        assert [send(api, patient).status_code for _ in range(4)] == [202, 202, 202, 429]
    with app.app_context(), tenant_scope(other.id):
        from core.delivery import limits  # noqa: PLC0415
        from tenants.models import Tenant  # noqa: PLC0415

        assert limits.limits_for(db.session.get(Tenant, other.id))["per_minute"] == 1


def test_a_batch_over_the_limit_is_refused_whole(app, clinic, api, patient, runner):
    limit(runner, "per_minute=3")
    item = {"patient_id": str(patient.id), "purpose": "campaign", "template": "Vaccination"}
    with time_machine.travel(OPEN_HOURS, tick=False):
        assert send(api, patient).status_code == 202
        refused = api("POST", "/messages/batch", json={"messages": [item] * 3})
        assert refused.status_code == 429 and refused.headers["Retry-After"]
        assert written(app, clinic) == 1
        too_many = api("POST", "/messages/batch", json={"messages": [item] * 4})
        assert too_many.status_code == 422 and too_many.json["error"]["field"] == "messages"
        assert api("POST", "/messages/batch", json={"messages": [item] * 2}).status_code == 202


def test_bad_limits_are_refused_with_a_sentence(app, runner):
    result = runner.invoke(main, ["limits", "set", "--country", "FR", "per_minute=lots"])
    assert result.exit_code == 2 and "whole number" in result.output
    result = runner.invoke(main, ["limits", "set", "--country", "FR", "per_hour=1"])
    assert result.exit_code == 2 and "per_hour" in result.output


def test_the_usage_page_shows_todays_use_against_the_limit(app, clinic, api, patient, runner):
    limit(runner, "per_day_sms=10")
    with time_machine.travel(OPEN_HOURS, tick=False):
        for _ in range(4):
            send(api, patient)
        admin = make_staff(app, clinic, "admin")
        page = client_for(app, clinic.slug)
        log_in(page, admin)
        usage = page.get("/settings/usage")
    assert usage.status_code == 200
    assert '<meter min="0" max="10" value="4"' in usage.text
    assert "Campagne" in usage.text and "40" in usage.text  # the clinic's language: French
