"""The plugin host: built-ins and a third-party package alike, enabled per country and clinic."""

import importlib
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from core.app import create_app
from core.db import db, utcnow
from core.plugins import DEFAULT_PLUGINS, PluginError, hooks_for, host
from tenants import provisioning
from tenants.scoping import system_scope
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_staff,
)

HELLO_PACKAGE = Path(__file__).parent / "hello_plugin"


@pytest.fixture(scope="module")
def hello_installed(tmp_path_factory):
    """pip-install the third-party package into a folder put on sys.path, as a venv would."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(HELLO_PACKAGE),
        ],
        check=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("relais_hello", None)
    importlib.invalidate_caches()


@pytest.fixture
def hello_app(app, hello_installed):
    """An app created after the package is installed: it finds the entry point."""
    application = create_app(TEST_CONFIG)
    application.test_client_class = HostClient
    yield application
    import relais_hello

    relais_hello.status_changes.clear()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def clinics(hello_app):
    """A French clinic and a German one; hello enabled for France only."""
    fr = make_clinic(hello_app, "lyon", "FR", plugins=("fr", "hello"))
    de = make_clinic(hello_app, "berlin", "DE", plugins=())
    return fr, de


def test_the_third_party_plugin_is_listed_with_where_it_came_from(hello_app):
    with hello_app.app_context():
        info = host().info["hello"]
        builtin = host().info["exports"]
    assert (info.kind, info.version) == ("feature", "1.2.0")
    assert info.source == "entry point (relais-hello)"
    assert info.description == "Hello: greets the clinic's staff on a page of its own."
    assert builtin.source == "built-in"


def test_hooks_reach_the_plugin_only_for_clinics_of_its_country(hello_app, clinics):
    fr, de = clinics
    with hello_app.test_request_context():
        assert {"hello_greeting": "Hello from FR"} in hooks_for(fr).relais_template_variables(
            tenant=fr
        )
        assert {"hello_greeting": "Hello from DE"} not in hooks_for(de).relais_template_variables(
            tenant=de
        )
        assert (
            hooks_for(fr).relais_handle_inbound(
                tenant=fr, patient=None, channel="sms", text=" hello "
            )
            == "greeted"
        )
        assert (
            hooks_for(de).relais_handle_inbound(
                tenant=de, patient=None, channel="sms", text="HELLO"
            )
            is None
        )
        message_id = uuid.uuid4()
        for tenant in (fr, de):
            hooks_for(tenant).relais_message_status_changed(
                tenant=tenant, message_id=message_id, status="delivered", at=utcnow()
            )
    import relais_hello

    assert relais_hello.status_changes == [("lyon", message_id, "delivered")]


def test_the_plugin_page_and_menu_exist_only_where_it_is_enabled(hello_app, clinics):
    fr, de = clinics
    lyon, berlin = client_for(hello_app, "lyon"), client_for(hello_app, "berlin")
    log_in(lyon, make_staff(hello_app, fr, "secretary"))
    log_in(berlin, make_staff(hello_app, de, "secretary"))

    page = lyon.get("/hello")
    assert page.status_code == 200
    assert "Bonjour, Clinic lyon" in page.text
    assert 'href="/hello"' in lyon.get("/").text

    assert berlin.get("/hello").status_code == 404
    assert 'href="/hello"' not in berlin.get("/").text


def test_a_clinic_admin_switches_the_feature_off_and_on(hello_app, clinics):
    fr, _ = clinics
    client = client_for(hello_app, "lyon")
    log_in(client, make_staff(hello_app, fr, "admin"))
    assert "hello" in client.get("/settings/features").text

    token = csrf_token(client, "/settings/features")
    client.post("/settings/features", data={"plugin": "hello", "enabled": "0", "csrf_token": token})
    assert client.get("/hello").status_code == 404
    assert 'href="/hello"' not in client.get("/").text

    client.post("/settings/features", data={"plugin": "hello", "enabled": "1", "csrf_token": token})
    assert client.get("/hello").status_code == 200


def test_a_clinic_cannot_switch_on_what_its_country_did_not_enable(hello_app, clinics):
    _, de = clinics
    client = client_for(hello_app, "berlin")
    log_in(client, make_staff(hello_app, de, "admin"))
    page = client.post(
        "/settings/features",
        data={
            "plugin": "hello",
            "enabled": "1",
            "csrf_token": csrf_token(client, "/settings/features"),
        },
    )
    assert page.status_code == 422
    assert client.get("/hello").status_code == 404


def test_disabling_for_the_country_reaches_every_clinic(hello_app, clinics):
    fr, _ = clinics
    client = client_for(hello_app, "lyon")
    log_in(client, make_staff(hello_app, fr, "secretary"))
    assert client.get("/hello").status_code == 200
    with hello_app.app_context(), system_scope():
        provisioning.set_country_plugin("FR", "hello", False)
        db.session.commit()
    assert client.get("/hello").status_code == 404


def test_plugin_pages_need_a_staff_login(hello_app, clinics):
    page = client_for(hello_app, "lyon").get("/hello")
    assert page.status_code == 302
    assert "/login" in page.headers["Location"]


def test_the_plugin_channel_and_command_are_registered(hello_app):
    assert "hello_sms" in hello_app.extensions["relais"].channels
    result = hello_app.test_cli_runner().invoke(args=["hello"])
    assert result.output == "hello from a plugin\n"


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        (("tests.core.broken_plugins.misspelled",), "relais_menu_itmes"),
        (("tests.core.broken_plugins.kindless",), "must declare kind"),
        (
            (
                "tests.core.broken_plugins.twin_channel",
                "tests.core.broken_plugins.twin_channel_again",
            ),
            "twin_sms",
        ),
        (("plugins.features.exports.plugin",), "two plugins are named 'exports'"),
        (("tests.core.broken_plugins.equal_by_value",), "must compare as itself"),
    ],
)
def test_a_broken_plugin_stops_the_start(app, modules, message):
    with pytest.raises(PluginError, match=message):
        create_app({**TEST_CONFIG, "PLUGINS": (*DEFAULT_PLUGINS, *modules)})
