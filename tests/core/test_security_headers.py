"""Every answer carries the security headers, whatever route family it comes from: staff
pages, patient pages, the operator console, the API, webhooks, static files, errors."""

import pytest

from core.clinic import apikeys
from core.db import db
from core.delivery.access_links import make_token
from tenants.scoping import tenant_scope
from tests.tenants.test_console import make_operator
from tests.worlds import client_for, csrf_token, log_in, make_clinic, make_patient, make_staff

SECURITY = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def assert_policy(response, *, cached: bool = False) -> None:
    headers = response.headers
    for name, value in SECURITY.items():
        assert headers.get(name) == value, f"{response.request.path}: {name}"
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "camera=()" in headers["Permissions-Policy"]
    assert headers["Strict-Transport-Security"] == HSTS  # the test clients speak https
    if not cached:
        assert headers["Cache-Control"] == "no-store", response.request.path


@pytest.fixture
def world(app):
    clinic = make_clinic(app, "demo", "FR", plugins=("fr", "outbox", "appointments", "otp"))
    return clinic, make_patient(app, clinic)


def test_staff_pages_forms_and_plugin_pages(app, world):
    clinic, patient = world
    client = client_for(app, clinic.slug)
    assert_policy(client.get("/login"))
    log_in(client, make_staff(app, clinic, "admin"))
    for path in ("/", "/patients", f"/patients/{patient.id}", "/messages", "/agenda", "/audit"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_policy(response)
    token = csrf_token(client, f"/patients/{patient.id}")
    moved = client.post(f"/patients/{patient.id}/reviewed", data={"csrf_token": token})
    assert moved.status_code in (302, 303)
    assert_policy(moved)


def test_patient_pages(app, world):
    clinic, patient = world
    client = client_for(app, clinic.slug)
    with app.app_context():
        token = make_token(clinic, patient)
    assert_policy(client.get(f"/me/access/{token}"))
    client.post(
        f"/me/access/{token}", data={"csrf_token": csrf_token(client, f"/me/access/{token}")}
    )
    home = client.get("/me/")
    assert home.status_code == 200
    assert_policy(home)
    assert_policy(client.get("/me/login"))


def test_the_operator_console(app):
    console = client_for(app, "operator")
    log_in(console, make_operator(app))
    for path in ("/", "/kpis"):
        response = console.get(path)
        assert response.status_code == 200, path
        assert_policy(response)


def test_the_api_webhooks_and_errors(app, world):
    clinic, patient = world
    with app.app_context(), tenant_scope(clinic.id):
        _, key = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(app, clinic.slug)
    bearer = {"Authorization": f"Bearer {key}"}
    answer = client.get(f"/api/v1/patients/{patient.id}", headers=bearer)
    assert answer.status_code == 200
    assert_policy(answer)
    assert_policy(client.get("/api/v1/patients", headers={"Authorization": "Bearer nope"}))
    assert_policy(client.post("/webhooks/twilio_sms/receipts", data={}))
    assert_policy(client.get("/no/such/page"))
    assert_policy(client_for(app, "hooks").post("/webhooks/twilio_sms/FR/inbound"))


def test_static_files_keep_their_own_caching(app, world):
    with client_for(app, world[0].slug).get("/static/relais.css") as response:
        assert response.status_code == 200
        assert_policy(response, cached=True)
        assert response.headers["Cache-Control"] != "no-store"


def test_no_hsts_over_plain_http_unless_the_deployment_says_https(app, world):
    clinic, _ = world
    client = app.test_client()
    plain = client.get("/login", base_url=f"http://{clinic.slug}.relais.test")
    assert plain.status_code == 200
    assert "Strict-Transport-Security" not in plain.headers
    assert plain.headers["Content-Security-Policy"]
    app.config["PREFERRED_URL_SCHEME"] = "https"  # TLS ends at the proxy
    try:
        behind_proxy = client.get("/login", base_url=f"http://{clinic.slug}.relais.test")
    finally:
        app.config["PREFERRED_URL_SCHEME"] = "http"
    assert behind_proxy.headers["Strict-Transport-Security"] == HSTS
