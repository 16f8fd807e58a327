"""What the operator console says stops a country's clinics from sending as they should."""

import html
import re

import pytest

from core.app import create_app
from core.db import db
from core.plugins import DEFAULT_PLUGINS, hooks_for_country
from tests.tenants.test_console import make_operator, post
from tests.worlds import TEST_CONFIG, HostClient, client_for, log_in, make_clinic

NO_REGULATION = (
    "{country}: no regulation plugin is enabled, so its clinics can send only transactional "
    "messages (codes, reminders, replies); campaigns are refused."
)


def warnings(page_text: str) -> list[str]:
    """The sentences of the page's "Needs your attention" box, none if it has none."""
    box = re.search(
        r'<section class="notice" aria-labelledby="warnings-title">(.*?)</section>', page_text, re.S
    )
    if not box:
        return []
    assert "Needs your attention" in box.group(1)
    return [html.unescape(w) for w in re.findall(r"<li>(.*?)</li>", box.group(1), re.S)]


@pytest.fixture
def console(app) -> HostClient:
    client = client_for(app, "operator")
    log_in(client, make_operator(app))
    return client


def test_a_country_with_clinics_but_no_regulation_plugin_is_pointed_out(app, console):
    make_clinic(app, "lyon", "FR", plugins=("fr",))  # regulated: nothing to say
    make_clinic(app, "berlin", "DE", plugins=("exports",))
    make_clinic(app, "paris", "FR", plugins=())

    for path in ("/", "/plugins", "/plugins/exports/settings/DE"):
        assert warnings(console.get(path).text) == [NO_REGULATION.format(country="Germany")]
    # Italy has no clinic: no one is stopped there.
    assert warnings(console.get("/plugins/exports/settings/IT").text) == []

    post(console, "/plugins", plugin="fr", country="FR", enabled="0")
    assert warnings(console.get("/plugins").text) == [
        NO_REGULATION.format(country="Germany"),
        NO_REGULATION.format(country="France"),
    ]


def test_no_warning_when_every_country_with_clinics_is_regulated(app, console):
    make_clinic(app, "lyon", "FR", plugins=("fr",))

    assert warnings(console.get("/plugins").text) == []
    assert "Needs your attention" not in console.get("/").text


@pytest.fixture
def warner_app(app):
    """An app with one more plugin, answering ``relais_country_warnings``."""
    other = create_app({**TEST_CONFIG, "PLUGINS": (*DEFAULT_PLUGINS, "tests.tenants.warner")})
    other.test_client_class = HostClient
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_plugins_enabled_for_a_country_say_what_is_wrong_there(warner_app):
    make_clinic(warner_app, "lyon", "FR", plugins=("fr",))  # warner is not enabled in France
    make_clinic(warner_app, "roma", "IT", plugins=("warner",))
    make_clinic(warner_app, "berlin", "DE", plugins=("fr", "warner"))  # warner: all is well
    console = client_for(warner_app, "operator")
    log_in(console, make_operator(warner_app))

    italy = [
        NO_REGULATION.format(country="Italy"),
        "Italy, warner: the sender ID INFO is generic: operators in IT refuse it",
    ]
    assert warnings(console.get("/plugins").text) == italy
    assert warnings(console.get("/").text) == italy
    # A country's page shows its own.
    assert warnings(console.get("/plugins/exports/settings/IT").text) == italy
    assert warnings(console.get("/plugins/exports/settings/FR").text) == []

    # A plugin enabled where no clinic is yet still warns the operator about it.
    post(console, "/plugins", plugin="warner", country="NL", enabled="1")
    assert "Netherlands, warner: the sender ID INFO is generic: operators in NL refuse it" in (
        warnings(console.get("/plugins").text)
    )


def test_hooks_for_a_country_reach_only_the_plugins_enabled_there(warner_app):
    make_clinic(warner_app, "roma", "IT", plugins=("warner",))

    with warner_app.app_context():
        assert hooks_for_country("IT").relais_country_warnings(country_code="IT") == [
            ["the sender ID INFO is generic: operators in IT refuse it"]
        ]
        assert hooks_for_country("FR").relais_country_warnings(country_code="FR") == []
