"""Plugin settings a clinic chooses for itself (``Setting(clinic=True)``): the accessor that
reads them, and the clinic admins' "Messaging rules" page."""

import html
import re

import pytest

from core.app import create_app
from core.clinic import settings
from core.db import db
from core.errors import ValidationError
from core.plugins import DEFAULT_PLUGINS
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_staff,
)

PLUGIN = "clinic_rules"  # tests/core/clinic_rules.py
RULES = "/settings/rules"


@pytest.fixture
def rules_app(app):
    """An app with one more plugin, declaring settings a clinic may choose."""
    other = create_app({**TEST_CONFIG, "PLUGINS": (*DEFAULT_PLUGINS, "tests.core.clinic_rules")})
    other.test_client_class = HostClient
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def lyon(rules_app):
    return make_clinic(rules_app, "lyon", "FR", plugins=("fr", PLUGIN))


@pytest.fixture
def nice(rules_app):
    return make_clinic(rules_app, "nice", "FR", plugins=("fr", PLUGIN))


def set_for_country(app, values: dict[str, str], country: str = "FR") -> None:
    """What the operator does on the console's settings page of the plugin."""
    with app.app_context(), system_scope():
        settings.save(country, PLUGIN, values)
        db.session.commit()


def read(app, clinic, name: str):
    with app.app_context(), tenant_scope(clinic.id):
        return settings.plugin_setting(clinic, PLUGIN, name)


def chosen(app, clinic) -> dict:
    with app.app_context(), tenant_scope(clinic.id):
        return settings.clinic_values(clinic, PLUGIN)


def save_for_clinic(app, clinic, form: dict[str, str]) -> None:
    with app.app_context(), tenant_scope(clinic.id):
        settings.save_clinic(clinic, PLUGIN, form)
        db.session.commit()


# --- the accessor -----------------------------------------------------------------------------


def test_a_clinics_choice_wins_over_its_countrys_and_stays_its_own(rules_app, lyon, nice):
    assert read(rules_app, lyon, "reminder_hours") == 24  # the declared default
    set_for_country(rules_app, {"reminder_hours": "48"})
    assert read(rules_app, lyon, "reminder_hours") == 48

    save_for_clinic(rules_app, lyon, {"reminder_hours": "12", "weekends": "yes"})

    assert (read(rules_app, lyon, "reminder_hours"), read(rules_app, lyon, "weekends")) == (
        12,
        True,
    )
    # Another clinic of France keeps the country's value, and the default where none is set.
    assert (read(rules_app, nice, "reminder_hours"), read(rules_app, nice, "weekends")) == (
        48,
        False,
    )


def test_an_empty_field_goes_back_to_the_countrys_value(rules_app, lyon):
    set_for_country(rules_app, {"reminder_hours": "48"})
    save_for_clinic(rules_app, lyon, {"reminder_hours": "12", "weekends": "yes"})

    save_for_clinic(rules_app, lyon, {"reminder_hours": " ", "weekends": "yes"})

    assert chosen(rules_app, lyon) == {"weekends": True}
    assert read(rules_app, lyon, "reminder_hours") == 48


def test_a_clinic_cannot_set_what_only_the_operator_sets(rules_app, lyon):
    set_for_country(rules_app, {"sender": "Cabinet"})

    save_for_clinic(rules_app, lyon, {"sender": "Mine", "reminder_hours": "6"})

    assert chosen(rules_app, lyon) == {"reminder_hours": 6}
    assert read(rules_app, lyon, "sender") == "Cabinet"


def test_a_bad_clinic_value_names_its_setting_and_nothing_is_stored(rules_app, lyon):
    save_for_clinic(rules_app, lyon, {"reminder_hours": "12"})

    with rules_app.app_context(), tenant_scope(lyon.id):
        with pytest.raises(ValidationError) as refused:
            settings.save_clinic(lyon, PLUGIN, {"reminder_hours": "200", "weekends": "yes"})
        db.session.rollback()

    assert refused.value.field == "reminder_hours"
    assert "Reminder lead time" in refused.value.message
    assert chosen(rules_app, lyon) == {"reminder_hours": 12}


@pytest.mark.parametrize(
    ("text", "value"), [("yes", True), ("No", False), ("true", True), ("0", False), ("oui", True)]
)
def test_yes_no_reads_what_pages_and_operators_send(text, value):
    assert settings.yes_no(text) is value


def test_yes_no_refuses_anything_else(app):
    with app.test_request_context(), pytest.raises(ValueError, match="Yes or no."):
        settings.yes_no("maybe")


# --- the messaging rules page -----------------------------------------------------------------


def staff_client(app, clinic, role: str = "admin") -> HostClient:
    """A staff member who chose English in the footer (the pages' words, whatever the
    catalog)."""
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, role))
    chosen = client.post(
        "/language", data={"lang": "en", "next": "/", "csrf_token": csrf_token(client, "/")}
    )
    assert chosen.status_code == 302
    return client


def post(client: HostClient, **data):
    return client.post(
        RULES, data={"plugin": PLUGIN, **data, "csrf_token": csrf_token(client, RULES)}
    )


def field_of(page_text: str, name: str) -> str:
    """The HTML of a setting's field on the page, from its label to its end."""
    found = re.search(rf'<label for="f-{PLUGIN}-{name}">.*?</div>', page_text, re.S)
    assert found, page_text
    return html.unescape(found.group(0))


def test_admin_sees_the_settings_the_clinic_may_choose_with_the_countrys_values(rules_app, lyon):
    set_for_country(rules_app, {"reminder_hours": "48", "sender": "Cabinet"})
    admin = staff_client(rules_app, lyon)

    page = admin.get(RULES)

    assert page.status_code == 200
    assert 'href="/settings/rules" aria-current="page">Messaging rules</a>' in page.text
    hours = field_of(page.text, "reminder_hours")
    assert "Reminder lead time" in hours and 'value=""' in hours
    assert "Hours before the appointment. From your country: 48<" in hours
    weekends = field_of(page.text, "weekends")  # a bool default: a yes/no choice
    assert '<option value="">From your country: No</option>' in weekends
    assert "Sender name" not in page.text  # only the operator sets it


def test_admin_chooses_a_value_and_only_their_clinic_gets_it(rules_app, lyon, nice):
    set_for_country(rules_app, {"reminder_hours": "48"})
    admin = staff_client(rules_app, lyon)

    saved = post(admin, reminder_hours="12", weekends="yes")

    assert saved.status_code == 302
    page = admin.get(RULES).text
    assert "Settings saved." in page
    hours = field_of(page, "reminder_hours")
    assert 'value="12"' in hours and "Leave empty for your country's value: 48." in hours
    assert '<option value="yes" selected>' in field_of(page, "weekends")
    assert read(rules_app, lyon, "reminder_hours") == 12
    assert read(rules_app, lyon, "weekends") is True
    assert read(rules_app, nice, "reminder_hours") == 48

    post(admin, reminder_hours="", weekends="")  # back to the country's values

    assert chosen(rules_app, lyon) == {}
    assert read(rules_app, lyon, "reminder_hours") == 48


def test_a_bad_value_is_named_next_to_its_field_and_nothing_changes(rules_app, lyon):
    admin = staff_client(rules_app, lyon)
    post(admin, reminder_hours="12")

    page = post(admin, reminder_hours="200", weekends="yes")

    assert page.status_code == 422
    error = re.search(rf'<p class="error" id="e-f-{PLUGIN}-reminder_hours">([^<]*)</p>', page.text)
    assert error, page.text
    assert error.group(1) == "Reminder lead time: from 1 to 72 hours"
    hours = field_of(page.text, "reminder_hours")
    assert 'value="200"' in hours and 'aria-invalid="true"' in hours  # what was typed is kept
    assert chosen(rules_app, lyon) == {"reminder_hours": 12}


def test_only_admins_choose_the_rules(rules_app, lyon):
    admin = staff_client(rules_app, lyon)
    token = csrf_token(admin, RULES)
    practitioner = staff_client(rules_app, lyon, "practitioner")

    assert practitioner.get(RULES).status_code == 403
    assert "Messaging rules" not in practitioner.get("/").text
    forged = practitioner.post(
        RULES, data={"plugin": PLUGIN, "reminder_hours": "6", "csrf_token": token}
    )
    assert forged.status_code in (400, 403)
    assert chosen(rules_app, lyon) == {}


def test_a_form_without_its_csrf_token_is_refused(rules_app, lyon):
    admin = staff_client(rules_app, lyon)

    page = admin.post(RULES, data={"plugin": PLUGIN, "reminder_hours": "6"})

    assert page.status_code == 400
    assert chosen(rules_app, lyon) == {}


def test_a_plugin_not_enabled_for_the_clinic_has_no_rules_here(rules_app):
    berlin = make_clinic(rules_app, "berlin", "DE", plugins=("exports",))
    admin = staff_client(rules_app, berlin)

    page = admin.get(RULES)

    assert page.status_code == 200
    assert "None of the plugins enabled for your clinic has a rule" in page.text
    assert post(admin, reminder_hours="6").status_code == 404
    assert chosen(rules_app, berlin) == {}
