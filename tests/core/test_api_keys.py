"""A clinic admin creates API keys (shown once, stored hashed) and revokes them."""

import re

import sqlalchemy as sa

from core import configured
from core.clinic.models import ApiKey
from core.db import db
from tenants.scoping import tenant_scope
from tests.worlds import client_for, csrf_token


def create_key(client, name="Front desk software"):
    page = client.post(
        "/settings/api-keys",
        data={"name": name, "csrf_token": csrf_token(client, "/settings/api-keys")},
    )
    match = re.search(r'data-testid="new-key">([^<]+)<', page.text)
    return page, match.group(1) if match else None


def test_a_key_is_shown_once_and_stored_hashed(app, clinic_fr, admin_client):
    page, token = create_key(admin_client)
    assert page.status_code == 200 and token.startswith("rl_")
    assert token not in admin_client.get("/settings/api-keys").text  # never again
    with app.app_context(), tenant_scope(clinic_fr.id):
        stored = db.session.scalars(sa.select(ApiKey.digest)).one()
    assert stored != token and token not in stored and len(stored) == 64


def test_a_key_opens_the_api_until_revoked(app, clinic_fr, admin_client):
    _, token = create_key(admin_client)
    api = client_for(app, clinic_fr.slug)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/patients", headers=headers).status_code == 200
    assert "Front desk software" in admin_client.get("/settings/api-keys").text

    with app.app_context(), tenant_scope(clinic_fr.id):
        key_id = db.session.scalars(sa.select(ApiKey.id)).one()
    admin_client.post(
        f"/settings/api-keys/{key_id}/revoke",
        data={"csrf_token": csrf_token(admin_client, "/settings/api-keys")},
    )
    refused = api.get("/api/v1/patients", headers=headers)
    assert refused.status_code == 401
    assert refused.json["error"]["message"]


def test_missing_or_wrong_keys_are_refused(app, clinic_fr):
    api = client_for(app, clinic_fr.slug)
    assert api.get("/api/v1/patients").status_code == 401
    for header in ("Bearer nope", "Basic abc", "Bearer "):
        assert api.get("/api/v1/patients", headers={"Authorization": header}).status_code == 401


def test_a_key_needs_a_name(app, clinic_fr, admin_client):
    page, token = create_key(admin_client, name="  ")
    assert page.status_code == 422 and token is None
    with app.app_context(), tenant_scope(clinic_fr.id):
        assert db.session.scalars(sa.select(ApiKey)).all() == []


def test_the_api_ignores_session_cookies(app, clinic_fr, admin_client):
    """A logged-in browser cannot be made to call the API (no cookie auth, so no CSRF)."""
    assert admin_client.get("/api/v1/patients").status_code == 401


def test_a_key_revoked_by_another_process_stops_working_within_config_seconds(
    app, clinic_fr, admin_client, monkeypatch
):
    """Each process remembers a key for CONFIG_SECONDS (no row read per request): a key
    revoked elsewhere (another web process) is refused here once they have passed."""
    now = [1000.0]
    monkeypatch.setattr(configured, "clock", lambda: now[0])
    _, token = create_key(admin_client)
    api = client_for(app, clinic_fr.slug)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/patients", headers=headers).status_code == 200
    with app.app_context(), db.engine.begin() as conn:  # another process: no session of ours
        conn.exec_driver_sql("UPDATE api_keys SET revoked_at = now()")
    assert api.get("/api/v1/patients", headers=headers).status_code == 200  # remembered
    now[0] += app.config["CONFIG_SECONDS"] + 0.1
    assert api.get("/api/v1/patients", headers=headers).status_code == 401


def test_a_key_works_only_on_its_own_clinic_even_once_remembered(
    app, clinic_fr, other_clinic, admin_client
):
    _, token = create_key(admin_client)
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        client_for(app, clinic_fr.slug).get("/api/v1/patients", headers=headers).status_code == 200
    )
    other = client_for(app, other_clinic.slug)
    assert other.get("/api/v1/patients", headers=headers).status_code == 401
