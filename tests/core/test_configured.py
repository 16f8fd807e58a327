"""The configuration a process remembers (core/configured.py): a change saved here is seen
at once, a change another process saves within CONFIG_SECONDS, a rolled back one never."""

import pytest

from core import configured
from core.clinic.settings import save, stored
from core.db import db
from core.plugins import enabled_plugins
from tenants import provisioning
from tenants.models import Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import client_for, make_clinic


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(configured, "clock", lambda: now[0])
    return now


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=("fr", "exports"))


def enabled(app, clinic) -> frozenset[str]:
    """What a new request or job of the clinic finds enabled."""
    with app.app_context(), tenant_scope(clinic.id):
        return enabled_plugins(db.session.get(Tenant, clinic.id))


def test_another_process_change_is_seen_within_config_seconds(app, clinic, clock):
    assert "exports" in enabled(app, clinic)
    with app.app_context(), db.engine.begin() as conn:  # another process: no session of ours
        conn.exec_driver_sql("DELETE FROM country_plugins WHERE plugin = 'exports'")
    assert "exports" in enabled(app, clinic)  # remembered
    clock[0] += app.config["CONFIG_SECONDS"] + 0.1
    assert "exports" not in enabled(app, clinic)


def test_a_change_saved_in_this_process_is_seen_at_once(app, clinic, clock):
    assert "exports" in enabled(app, clinic)
    with app.app_context(), system_scope():
        provisioning.set_country_plugin("FR", "exports", False)
        db.session.commit()
    assert "exports" not in enabled(app, clinic)


def test_a_rolled_back_change_is_not_remembered(app, clinic, clock):
    assert "exports" in enabled(app, clinic)
    with app.app_context(), system_scope():
        provisioning.set_country_plugin("FR", "exports", False)
        db.session.flush()
        tenant = db.session.get(Tenant, clinic.id)
        assert "exports" not in enabled_plugins(tenant)  # this transaction sees its change
        db.session.rollback()
    assert "exports" in enabled(app, clinic)


def test_without_config_seconds_every_context_reads_again(app, clinic, clock, monkeypatch):
    monkeypatch.setitem(app.config, "CONFIG_SECONDS", 0)
    assert "exports" in enabled(app, clinic)
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM country_plugins WHERE plugin = 'exports'")
    assert "exports" not in enabled(app, clinic)


def test_a_setting_saved_twice_in_one_transaction_builds_on_the_first(app, clock):
    with app.app_context(), system_scope():
        save("FR", "outbox", {"report_delivery": "no"})  # pending: not flushed yet
        assert stored("FR", "outbox") == {"report_delivery": False}
        db.session.rollback()
    with app.app_context(), system_scope():
        assert stored("FR", "outbox") == {}


def test_a_clinic_suspended_by_another_process_answers_403_within_config_seconds(
    app, clinic, clock
):
    """A request reads no clinic row (remembered with the configuration): a suspension saved
    elsewhere is seen once CONFIG_SECONDS have passed; an unknown subdomain is never
    remembered (a clinic created meanwhile answers at once)."""
    page = client_for(app, clinic.slug)
    assert page.get("/login").status_code == 200
    assert client_for(app, "later").get("/login").status_code == 404
    with app.app_context(), db.engine.begin() as conn:  # another process: no session of ours
        conn.exec_driver_sql(
            "INSERT INTO tenants (id, slug, name, country_code, timezone, created_at)"
            " VALUES (gen_random_uuid(), 'later', 'Later', 'FR', 'Europe/Paris', now())"
        )
        conn.exec_driver_sql("UPDATE tenants SET suspended_at = now() WHERE slug = 'demo'")
    assert client_for(app, "later").get("/login").status_code == 200
    assert page.get("/login").status_code == 200  # remembered
    clock[0] += app.config["CONFIG_SECONDS"] + 0.1
    assert page.get("/login").status_code == 403
