"""A plugin's page in the operator console (``relais_register_console_pages``): mounted on
the console's host, in its menu, for operators only."""

import pytest

from core.app import create_app
from core.db import db
from core.plugins import DEFAULT_PLUGINS
from tests.tenants.test_console import make_operator
from tests.worlds import TEST_CONFIG, HostClient, client_for, log_in


@pytest.fixture
def console_app(app):
    application = create_app(
        {**TEST_CONFIG, "PLUGINS": (*DEFAULT_PLUGINS, "tests.core.host_plugins.console_page")}
    )
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_plugins_console_page_is_in_the_console_menu_for_operators_only(
    console_app, clinic_fr, admin
):
    console = client_for(console_app, "operator")
    log_in(console, make_operator(console_app))
    page = console.get("/hello")
    assert page.status_code == 200 and "Hello operators" in page.text
    assert '<a href="/hello" aria-current="page">Hello</a>' in page.text
    assert '<a href="/hello" >Hello</a>' in console.get("/").text  # in the menu everywhere
    assert client_for(console_app, "operator").get("/hello").status_code == 302  # log in first
    staff = client_for(console_app, clinic_fr.slug)
    log_in(staff, admin)
    assert staff.get("/hello").status_code == 404  # not on a clinic's host
