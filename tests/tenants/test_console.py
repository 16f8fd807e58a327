"""The operator console at ``operator.<domain>``, used by a logged-in country operator."""

import html
import re

import pyotp
import pytest
import sqlalchemy as sa

from core.app import create_app
from core.clinic.settings import stored
from core.db import db
from core.delivery.routing import configured_routes
from core.plugins import DEFAULT_PLUGINS
from tenants import provisioning
from tenants.models import Tenant
from tenants.scoping import system_scope
from tests.worlds import (
    PASSWORD,
    SERVER,
    TEST_CONFIG,
    Account,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

CONSOLE = f"https://operator.{SERVER}"


def make_operator(app, email: str = "ops@relais.example") -> Account:
    secret = pyotp.random_base32()
    with app.app_context(), system_scope():
        operator = provisioning.create_operator(email, "Country operator", PASSWORD)
        operator.totp_secret, operator.totp_enrolled = secret, True
        db.session.commit()
        return Account(operator.id, operator.email, PASSWORD, secret)


@pytest.fixture
def operator(app) -> Account:
    return make_operator(app)


@pytest.fixture
def console(app, operator) -> HostClient:
    client = client_for(app, "operator")
    log_in(client, operator)
    return client


def post(client: HostClient, path: str, **data) -> object:
    """Submit the form a page shows, with its CSRF token, as a browser does."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, path)})


def tenant_slugs(app) -> list[str]:
    with app.app_context(), system_scope():
        return list(db.session.scalars(sa.select(Tenant.slug).order_by(Tenant.slug)))


# --- clinics ----------------------------------------------------------------------------------


def test_operator_creates_a_clinic_and_sees_it_listed(app, console):
    page = post(
        console, "/", name="Cabinet Rive Gauche", subdomain="rive-gauche", country="DE", timezone=""
    )

    assert page.status_code == 302
    listing = console.get("/").text
    assert "Cabinet Rive Gauche" in listing
    assert f"rive-gauche.{SERVER}" in listing
    assert "Europe/Berlin" in listing  # the country's time zone when none is given
    assert tenant_slugs(app) == ["rive-gauche"]


@pytest.mark.parametrize(
    ("subdomain", "message"),
    [
        ("Rive Gauche!", "Use lowercase letters, digits and hyphens"),
        ("operator", "This subdomain is reserved."),
    ],
)
def test_an_invalid_subdomain_is_explained_next_to_the_field(app, console, subdomain, message):
    page = post(console, "/", name="Cabinet", subdomain=subdomain, country="FR", timezone="")

    assert page.status_code == 422
    field = re.search(r'<p class="error" id="e-subdomain">([^<]*)</p>', page.text)
    assert field, page.text
    assert message in field.group(1)
    assert 'aria-describedby="e-subdomain"' in page.text
    assert 'value="Cabinet"' in page.text  # what was typed is kept
    assert tenant_slugs(app) == []


def test_a_taken_subdomain_is_refused(app, console, clinic_fr):
    page = post(console, "/", name="Copy", subdomain=clinic_fr.slug, country="FR", timezone="")

    assert page.status_code == 409
    field = re.search(r'<p class="error" id="e-subdomain">([^<]*)</p>', page.text)
    assert field and field.group(1) == "This subdomain is taken.", page.text
    assert 'value="Copy"' in page.text
    assert tenant_slugs(app) == [clinic_fr.slug]


# --- plugins ----------------------------------------------------------------------------------


def test_plugins_page_lists_every_installed_plugin(app, console):
    page = console.get("/plugins")

    assert page.status_code == 200
    installed = app.extensions["relais"].plugins.info
    assert {"fr", "exports"} <= set(installed)
    for info in installed.values():
        row = re.search(
            rf'<span class="name">{re.escape(str(info.title))}</span>(.*?)</tr>', page.text, re.S
        )
        assert row, info.name
        cells = row.group(1)
        for part in (info.version, info.description):
            assert str(part) in html.unescape(cells), (info.name, part)
    # Names, kinds and sources in words, not the codes stored.
    assert '<span class="name">Outbox (development)</span>' in page.text
    assert "<td>Channel</td>" in page.text and "<td>Built-in</td>" in page.text


def plugin_button(page_text: str, plugin: str, country: str) -> str:
    """The visible label of the switch of a plugin in a country: "On" or "Off" (what it does
    follows, visually hidden)."""
    form = re.search(
        rf'name="plugin" value="{plugin}"><input type="hidden" name="country" value="{country}">'
        r".*?<button[^>]*>([^<]*)<span",
        page_text,
        re.S,
    )
    assert form, (plugin, country)
    return form.group(1)


def test_operator_enables_and_disables_a_plugin_for_a_country(app, console):
    assert plugin_button(console.get("/plugins").text, "exports", "DE") == "Off"

    assert post(console, "/plugins", plugin="exports", country="DE", enabled="1").status_code == 302
    page = console.get("/plugins").text
    assert plugin_button(page, "exports", "DE") == "On"
    assert plugin_button(page, "exports", "IT") == "Off"
    with app.app_context(), system_scope():
        assert "exports" in provisioning.country_plugins("DE")

    assert post(console, "/plugins", plugin="exports", country="DE", enabled="0").status_code == 302
    assert plugin_button(console.get("/plugins").text, "exports", "DE") == "Off"


def test_enabling_reaches_the_clinics_of_that_country(app, console):
    clinic = make_clinic(app, "praxis", country="DE", plugins=())
    admin = make_staff(app, clinic, "admin")
    staff = client_for(app, clinic.slug)
    log_in(staff, admin)
    assert staff.get("/exports/patients.csv").status_code == 404

    post(console, "/plugins", plugin="exports", country="DE", enabled="1")

    assert staff.get("/exports/patients.csv").status_code == 200


def test_enabling_an_unknown_plugin_is_refused(app, console):
    page = post(console, "/plugins", plugin="nonesuch", country="DE", enabled="1")

    assert page.status_code == 422
    assert "No plugin is named nonesuch." in page.text


# --- plugin settings --------------------------------------------------------------------------

DELIMITER = "/plugins/exports/settings/FR"


def delimiter_field(page_text: str) -> str:
    match = re.search(
        r'<input id="f-delimiter" name="delimiter" type="text" value="([^"]*)"', page_text
    )
    assert match, page_text
    return match.group(1)


def test_operator_sets_a_plugin_setting(app, console, clinic_fr, admin_client):
    assert delimiter_field(console.get(DELIMITER).text) == ","  # the plugin's default

    page = post(console, DELIMITER, delimiter=";")

    assert page.status_code == 302
    assert delimiter_field(console.get(DELIMITER).text) == ";"
    # The clinics of France now get their export with that delimiter.
    make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand")
    export = admin_client.get("/exports/patients.csv").text
    assert export.splitlines()[0].startswith("id;last_name;first_name")
    # Germany keeps the default.
    assert delimiter_field(console.get("/plugins/exports/settings/DE").text) == ","


def test_an_invalid_setting_is_named_and_nothing_changes(app, console):
    post(console, DELIMITER, delimiter=";")

    page = post(console, DELIMITER, delimiter="x")

    assert page.status_code == 422
    error = re.search(r'<p class="error" id="e-delimiter">([^<]*)</p>', page.text)
    assert error, page.text
    assert "CSV delimiter" in error.group(1)
    with app.app_context():
        assert stored("FR", "exports") == {"delimiter": ";"}
    assert delimiter_field(console.get(DELIMITER).text) == ";"


def test_settings_of_an_unknown_plugin_or_country_are_not_found(console):
    assert console.get("/plugins/nonesuch/settings/FR").status_code == 404
    assert console.get("/plugins/fr/settings/FR").status_code == 200  # declares settings
    assert console.get("/plugins/fr/settings/ZZ").status_code == 404
    assert console.get("/plugins/exports/settings/ZZ").status_code == 404


# --- who may use the console ------------------------------------------------------------------


def test_the_console_needs_a_login(app):
    page = client_for(app, "operator").get("/")

    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login"), page.headers["Location"]


def test_clinic_staff_cannot_reach_the_console(app, clinic_fr, admin, admin_client):
    # Logged in on the clinic: the cookie is the clinic's only, so the console asks to log in.
    for path in ("/", "/plugins", DELIMITER):
        page = admin_client.get(path, base_url=CONSOLE)
        assert page.status_code == 302, path
        assert "/login" in page.headers["Location"]
    # Even with the clinic's session cookie carried over to the console host.
    session = admin_client.get_cookie("session", domain=f"{clinic_fr.slug}.{SERVER}")
    intruder = client_for(app, "operator")
    intruder.set_cookie("session", session.value, domain=f"operator.{SERVER}")
    for path in ("/", "/plugins"):
        assert intruder.get(path).status_code == 302
    before = tenant_slugs(app)
    forged = intruder.post("/", data={"name": "X", "subdomain": "x", "country": "FR"})
    assert forged.status_code in (302, 400)
    assert tenant_slugs(app) == before
    # Nor does the staff account log in there: operators are another set of accounts.
    outsider = client_for(app, "operator")
    page = outsider.post(
        "/login",
        data={
            "email": admin.email,
            "password": admin.password,
            "csrf_token": csrf_token(outsider, "/login"),
        },
    )
    assert page.status_code == 401
    assert "Wrong e-mail or password." in page.text


def test_an_operator_session_is_no_login_on_a_clinic(app, clinic_fr, console):
    assert console.get("/", base_url=f"https://{clinic_fr.slug}.{SERVER}").status_code == 302
    session = console.get_cookie("session", domain=f"operator.{SERVER}")
    visitor = client_for(app, clinic_fr.slug)
    visitor.set_cookie("session", session.value, domain=f"{clinic_fr.slug}.{SERVER}")

    page = visitor.get("/")

    assert page.status_code == 302
    assert "/login" in page.headers["Location"]
    assert visitor.get("/patients").status_code == 302


# --- secret settings --------------------------------------------------------------------------

SECRET = "tok_9f8e7d6c5b4a-very-secret"


@pytest.fixture
def secretive_app(app):
    """An app with one more plugin, whose settings include a provider token."""
    other = create_app(
        {**TEST_CONFIG, "PLUGINS": (*DEFAULT_PLUGINS, "tests.tenants.secretive.plugin")}
    )
    other.test_client_class = HostClient
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def sealed_column(app) -> str:
    with app.app_context(), db.engine.connect() as conn:
        return conn.scalar(
            sa.text(
                "SELECT sealed FROM plugin_settings"
                " WHERE plugin = 'secretive' AND country_code = 'FR'"
            )
        )


def test_a_secret_setting_is_stored_encrypted_and_never_shown(secretive_app):
    console = client_for(secretive_app, "operator")
    log_in(console, make_operator(secretive_app))
    path = "/plugins/secretive/settings/FR"
    assert "secretive" in console.get("/plugins").text

    saved = post(console, path, api_token=SECRET, sender="Cabinet")

    assert saved.status_code == 302
    raw = sealed_column(secretive_app)
    assert raw and SECRET not in raw and "Cabinet" not in raw
    with secretive_app.app_context():
        assert stored("FR", "secretive") == {"api_token": SECRET, "sender": "Cabinet"}
    form = console.get(path).text
    assert SECRET not in form
    assert 'value="Cabinet"' in form
    assert "Leave empty to keep the current value." in form

    # A refused form does not echo the secret typed, and changes nothing.
    refused = post(console, path, api_token="tok_new-secret", sender="A sender name far too long")
    assert refused.status_code == 422
    assert "tok_new-secret" not in refused.text and SECRET not in refused.text
    assert "Sender name" in re.search(r'id="e-sender">([^<]*)<', refused.text).group(1)

    # Leaving the secret empty keeps it; other settings change.
    assert post(console, path, api_token="", sender="Relais").status_code == 302
    with secretive_app.app_context():
        assert stored("FR", "secretive") == {"api_token": SECRET, "sender": "Relais"}
    assert sealed_column(secretive_app) != raw


# --- providers per channel ----------------------------------------------------------------------


def test_an_operator_puts_a_second_sms_provider_behind_the_first(app, console):
    make_clinic(app, "banc", "FR", plugins=("fr", "outbox"))

    post(console, "/providers", country="FR", provider="outbox_sms", priority="2", weight="50")
    page = post(
        console, "/providers", country="FR", provider="twilio_sms", priority="1", weight="100"
    )
    assert page.status_code == 302

    with app.app_context(), system_scope():
        assert [(r.provider, r.priority, r.weight) for r in configured_routes("FR")] == [
            ("twilio_sms", 1, 100),
            ("outbox_sms", 2, 50),
        ]
    listing = console.get("/providers").get_data(as_text=True)
    assert "outbox_sms" in listing and "Remove" in listing

    post(console, "/providers", action="remove", country="FR", provider="outbox_sms")
    with app.app_context(), system_scope():
        assert [r.provider for r in configured_routes("FR")] == ["twilio_sms"]


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            {"provider": "nope_sms", "priority": "1", "weight": "1"},
            "provider",
            "No provider is named",
        ),
        (
            {"provider": "outbox_sms", "priority": "first", "weight": "1"},
            "priority",
            "whole number",
        ),
        ({"provider": "outbox_sms", "priority": "1", "weight": "5000"}, "weight", "0 to 1000"),
    ],
)
def test_a_bad_provider_route_is_refused_next_to_its_field(app, console, form, field, message):
    response = post(console, "/providers", country="FR", **{"weight": "1", **form})
    assert response.status_code == 422
    body = html.unescape(response.get_data(as_text=True))
    assert message in body and f'id="e-{field}"' in body
    with app.app_context(), system_scope():
        assert configured_routes("FR") == []
