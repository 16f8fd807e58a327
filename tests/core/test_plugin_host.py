"""The plugin host calls hooks through pluggy: wrappers, errors and tracing work; the callers
of a clinic are kept per enabled set; features add hooks of their own."""

import logging

import pluggy
import pytest

from core.app import create_app
from core.clinic.models import Patient
from core.db import db
from core.delivery import outbox
from core.plugins import DEFAULT_PLUGINS, PluginError, hooks_for, hooks_for_country, host
from tenants import provisioning
from tenants.models import Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.core.host_plugins import exploding, optional_reactor, watcher
from tests.tenants.test_console import make_operator
from tests.tenants.test_country_warnings import warnings
from tests.worlds import TEST_CONFIG, HostClient, client_for, log_in, make_clinic, make_patient

HOST_PLUGINS = (
    "tests.core.host_plugins.watcher",
    "tests.core.host_plugins.exploding",
    "tests.tenants.warner",
)


def make_app(**config):
    application = create_app({**TEST_CONFIG, **config})
    application.test_client_class = HostClient
    return application


def dispose(application) -> None:
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def host_app(app):
    """Every built-in plugin, a wrapper-only plugin, a failing one and a warning one."""
    application = make_app(PLUGINS=(*DEFAULT_PLUGINS, *HOST_PLUGINS))
    yield application
    watcher.seen.clear()
    dispose(application)


# --- wrappers and errors ----------------------------------------------------------------------


def test_a_wrapper_sees_and_extends_what_a_clinic_call_answers(host_app):
    watched = make_clinic(host_app, "lyon", "FR", plugins=("fr", "watcher"))
    unwatched = make_clinic(host_app, "paris", "FR", plugins=("fr",))  # same country, no watcher
    with host_app.app_context(), system_scope():
        provisioning.set_tenant_feature(db.session.get(Tenant, unwatched.id), "watcher", False)
        db.session.commit()

    # Each call in its clinic's scope, as a request or a job makes it (row-level security
    # shows a clinic's switched-off features to that clinic's transactions only).
    with host_app.test_request_context(), tenant_scope(watched.id):
        answers = hooks_for(watched).relais_template_variables(tenant=watched)
        assert answers[-1] == {"watched": len(answers) - 1}
        assert watcher.seen == [("relais_template_variables", answers[:-1])]
    with host_app.test_request_context(), tenant_scope(unwatched.id):
        assert not any(
            "watched" in a for a in hooks_for(unwatched).relais_template_variables(tenant=unwatched)
        )


def test_a_wrapper_wraps_each_answer_the_core_attributes_to_its_plugin(host_app):
    make_clinic(host_app, "roma", "IT", plugins=("warner", "watcher"))
    console = client_for(host_app, "operator")
    log_in(console, make_operator(host_app))

    # The console names the plugin of each warning: the wrapper's addition goes with the
    # answer it wrapped, and the wrapper itself answers nothing.
    assert warnings(console.get("/plugins").text) == [
        "Italy: no regulation plugin is enabled, so its clinics can send only transactional "
        "messages (codes, reminders, replies); campaigns are refused.",
        "Italy, warner: the sender ID INFO is generic: operators in IT refuse it",
        "Italy, warner: checked in IT",
    ]
    with host_app.app_context():
        assert list(hooks_for_country("IT").each("relais_country_warnings", country_code="IT")) == [
            (
                "warner",
                ["the sender ID INFO is generic: operators in IT refuse it", "checked in IT"],
            )
        ]


def test_an_error_in_a_hook_reaches_the_caller_through_the_wrappers(host_app):
    clinic = make_clinic(host_app, "lyon", "FR", plugins=("fr", "watcher", "exploding"))
    with host_app.app_context():
        with pytest.raises(exploding.Broken, match="the exploding plugin broke"):
            hooks_for(clinic).relais_handle_inbound(
                tenant=clinic, patient=None, channel="sms", text="OUI"
            )
        with pytest.raises(exploding.Broken):
            list(
                hooks_for(clinic).each(
                    "relais_handle_inbound", tenant=clinic, patient=None, channel="sms", text="OUI"
                )
            )
    assert [(hook, type(error)) for hook, error in watcher.seen] == [
        ("relais_handle_inbound", exploding.Broken),
        ("relais_handle_inbound", exploding.Broken),
    ]


def test_a_call_missing_an_argument_is_reported_by_pluggy(host_app):
    clinic = make_clinic(host_app, "roma", "IT", plugins=("warner",))
    with host_app.app_context():
        answers = hooks_for(clinic).each("relais_country_warnings")
        with (
            pytest.warns(UserWarning, match="'country_code'"),
            pytest.raises(pluggy.HookCallError, match="country_code"),
        ):
            next(answers)


# --- the callers kept per enabled set ---------------------------------------------------------


def test_clinics_with_the_same_plugins_share_their_callers(host_app):
    lyon = make_clinic(host_app, "lyon", "FR", plugins=("fr", "watcher"))
    paris = make_clinic(host_app, "paris", "FR")
    with host_app.app_context():
        assert hooks_for(lyon) is hooks_for(paris)
        assert (
            hooks_for(lyon).relais_template_variables is hooks_for(paris).relais_template_variables
        )
    with host_app.app_context():  # another request: nothing is rebuilt
        assert hooks_for(lyon) is hooks_for(paris)
        assert host().subset.cache_info().maxsize  # bounded


def test_a_change_of_enablement_is_seen_at_once(host_app):
    clinic = make_clinic(host_app, "lyon", "FR", plugins=("fr", "watcher"))

    def watched() -> bool:
        answers = hooks_for(clinic).relais_template_variables(tenant=clinic)
        return any("watched" in a for a in answers)

    with host_app.test_request_context(), system_scope():
        assert watched()
        provisioning.set_tenant_feature(db.session.get(Tenant, clinic.id), "watcher", False)
        db.session.flush()
        assert not watched()  # in the same request that switched it off
        db.session.commit()
    with host_app.test_request_context(), system_scope():
        assert not watched()  # and in the next one
        provisioning.set_country_plugin("FR", "watcher", False)
        db.session.commit()
    with host_app.test_request_context(), system_scope():
        assert not watched()
        provisioning.set_country_plugin("FR", "watcher", True)
        db.session.flush()
        assert not watched()  # the clinic's own switch still holds
        provisioning.set_tenant_feature(db.session.get(Tenant, clinic.id), "watcher", True)
        db.session.flush()
        assert watched()
        db.session.commit()


# --- tracing ----------------------------------------------------------------------------------


@pytest.fixture
def traced_app(app):
    application = make_app(TRACE_HOOKS=True)
    yield application
    dispose(application)


def test_tracing_logs_every_hook_call_without_a_patients_data(traced_app, caplog):
    clinic = make_clinic(traced_app, "lyon", "FR", plugins=("outbox", "fr"))
    patient = make_patient(
        traced_app, clinic, first_name="Jeanne", last_name="Durand", phone="0612345678"
    )
    caplog.set_level(logging.INFO, logger="relais.hooks")
    with traced_app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        outbox.send(
            clinic,
            who,
            "transactional",
            "Bonjour {{ name }}, votre code : 483920",
            {"name": "Jeanne"},
        )
        hooks_for(clinic).relais_handle_inbound(
            tenant=clinic, patient=who, channel="sms", text="OUI Jeanne 483920"
        )
        db.session.rollback()

    lines = [r.getMessage() for r in caplog.records if r.name == "relais.hooks"]
    judged = [line for line in lines if line.startswith("relais_judge_message(")]
    assert judged, lines
    assert f"patient=<Patient {clinic.id}/{patient.id}>" in judged[0]
    assert "plugins=fr" in judged[0] and " ms" in judged[0]
    inbound = [line for line in lines if line.startswith("relais_handle_inbound(")]
    assert "channel='sms'" in inbound[0] and "text=<str, 17 chars>" in inbound[0]
    assert "answer" in inbound[0]
    for secret in ("Jeanne", "Durand", "612345678", "483920", "OUI"):
        assert not any(secret in line for line in lines), secret


def test_no_trace_unless_the_setting_asks(host_app, caplog):
    clinic = make_clinic(host_app, "lyon", "FR", plugins=("fr",))
    caplog.set_level(logging.INFO, logger="relais.hooks")
    with host_app.test_request_context():
        hooks_for(clinic).relais_template_variables(tenant=clinic)
    assert not [r for r in caplog.records if r.name == "relais.hooks"]


# --- a feature's own hooks --------------------------------------------------------------------

APPOINTMENTS = "plugins.features.appointments.plugin"
REMINDERS = "plugins.features.reminders.plugin"
OUTBOX = "plugins.channels.outbox.plugin"


def test_the_appointments_feature_adds_its_hook_whatever_the_order(app):
    # Reminders (which implements it) registered before appointments (which declares it).
    application = make_app(PLUGINS=(OUTBOX, REMINDERS, APPOINTMENTS))
    with application.app_context():
        caller = host().pm.hook.relais_appointment_changed
        assert caller.spec.namespace.__name__ == "plugins.features.appointments.hookspecs"
        assert [i.plugin_name for i in caller.get_hookimpls()] == ["reminders"]
    dispose(application)
    from core import hookspecs

    assert not hasattr(hookspecs, "relais_appointment_changed")  # not a core hook


def test_a_hook_of_a_feature_not_installed_stops_the_start(app):
    with pytest.raises(PluginError, match=r"'reminders' implements 'relais_appointment_changed'"):
        make_app(PLUGINS=(OUTBOX, REMINDERS))


def test_an_optional_implementation_starts_without_the_feature(app):
    application = make_app(PLUGINS=(OUTBOX, "tests.core.host_plugins.optional_reactor"))
    assert "optional_reactor" in application.extensions["relais"].plugins.info
    dispose(application)
    with_feature = make_app(
        PLUGINS=(OUTBOX, APPOINTMENTS, "tests.core.host_plugins.optional_reactor")
    )
    clinic = make_clinic(with_feature, "lyon", "FR", plugins=("appointments", "optional_reactor"))
    with with_feature.app_context(), tenant_scope(clinic.id):
        hooks_for(clinic).relais_appointment_changed(
            tenant=clinic, appointment=None, change="moved"
        )
    assert optional_reactor.changes == ["moved"]
    optional_reactor.changes.clear()
    dispose(with_feature)
