"""The planner's statistics kept fresh by the sweeper, with autovacuum off or on (issue 14)."""

import time
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa

from core import statistics
from core.clinic.patients import create_patient
from core.db import db, utcnow
from core.delivery import sweeper
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def _analyzed(table: str):
    return db.session.execute(
        sa.text(
            "SELECT last_analyze, reltuples FROM pg_stat_user_tables s"
            " JOIN pg_class c ON c.oid = s.relid WHERE s.relname = :t"
        ),
        {"t": table},
    ).one()


def _changed(table: str) -> int:
    with db.engine.connect() as conn:
        return conn.scalar(
            sa.text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = :t"),
            {"t": table},
        )


def _grow_patients(app, tenant_id, count: int, name: str) -> None:
    with app.app_context(), tenant_scope(tenant_id):
        tenant = db.session.get(Tenant, tenant_id)
        for n in range(count):
            create_patient(tenant, {"first_name": f"P{n}", "last_name": name, "phone": None})
        db.session.commit()


def _counted(table: str, at_least: int) -> None:
    """Until PostgreSQL counted ``at_least`` writes to ``table`` (it counts them a moment
    after their transaction, up to a second), at most 10 s: with autovacuum on, it may
    analyze the table meanwhile and the count never come, which the caller shows."""
    deadline = time.monotonic() + 10
    while _changed(table) < at_least and time.monotonic() < deadline:
        time.sleep(0.2)


def test_tables_that_grew_are_analyzed_by_the_sweeper_once_a_minute(app, clinic_fr):
    _grow_patients(app, clinic_fr.id, 120, "Grow")
    with app.app_context():
        autovacuum = db.session.scalar(sa.text("SELECT current_setting('autovacuum')"))
        before = _analyzed("patients")
        statistics._last.clear()
        _counted("patients", 120)
        counts = sweeper.sweep()
        after = _analyzed("patients")
        if autovacuum == "on":  # PostgreSQL's own autovacuum does it: Relais leaves it
            assert statistics.refresh() == []
            return
        assert counts["analyzed"] >= 1
        assert after.last_analyze is not None and after.last_analyze != before.last_analyze
        assert after.reltuples >= 120  # the planner now knows the clinic's patients
        # Within the minute, the next sweep looks only for tables that doubled.
        assert statistics.refresh_if_due(utcnow() + timedelta(seconds=30)) == []
        assert sweeper.sweep()["analyzed"] == 0


def test_a_table_that_doubled_is_analyzed_at_the_next_pass_not_a_minute_later(app, clinic_fr):
    with app.app_context():
        if db.session.scalar(sa.text("SELECT current_setting('autovacuum')")) == "on":
            return  # PostgreSQL's autovacuum keeps the statistics: nothing to show here
    _grow_patients(app, clinic_fr.id, 60, "First")
    with app.app_context():
        _counted("patients", 60)
        statistics._last.clear()
        assert "patients" in statistics.refresh_if_due()  # the minute's look: 10 % changed
        size = _analyzed("patients").reltuples
    # A tenth more: left for the next minute's look.
    _grow_patients(app, clinic_fr.id, max(1, int(size * 0.15)), "Tenth")
    with app.app_context():
        _counted("patients", int(size * 0.15))
        assert statistics.refresh_if_due(utcnow() + timedelta(seconds=1)) == []
    # Doubled (50 rows and its size more): analyzed at once, planned on its new size.
    _grow_patients(app, clinic_fr.id, int(size) + 60, "Double")
    with app.app_context():
        _counted("patients", int(size * 1.15) + 60)
        assert "patients" in statistics.refresh_if_due(utcnow() + timedelta(seconds=2))
        assert _analyzed("patients").reltuples >= 2 * size


@contextmanager
def autovacuum_on_but_not_yet_on(table: str):
    """Autovacuum turned on for the server, as most deployments have it, while it has not
    come to ``table`` yet (it looks once a minute): the table's own setting keeps it away
    for the test. Both are as they were afterwards."""
    engine = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    def setting() -> tuple[str, str | None]:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT setting, sourcefile FROM pg_settings WHERE name = 'autovacuum'")
            ).one()

    def turn(value: str | None, wanted: str) -> None:
        with engine.connect() as conn:
            if value is None:
                conn.exec_driver_sql("ALTER SYSTEM RESET autovacuum")
            else:
                conn.exec_driver_sql(f"ALTER SYSTEM SET autovacuum = {value}")
            conn.exec_driver_sql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while setting()[0] != wanted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert setting()[0] == wanted

    before, source = setting()
    with engine.connect() as conn:
        conn.exec_driver_sql(f'ALTER TABLE "{table}" SET (autovacuum_enabled = off)')
    try:
        turn("on", "on")
        yield
    finally:
        # Back to the file it came from (postgresql.auto.conf: its value there).
        turn(before if (source or "").endswith("postgresql.auto.conf") else None, before)
        with engine.connect() as conn:
            conn.exec_driver_sql(f'ALTER TABLE "{table}" RESET (autovacuum_enabled)')


def test_with_autovacuum_on_a_table_that_doubled_is_analyzed_at_the_next_pass(app, clinic_fr):
    """Autovacuum looks once a minute: a new deployment's first burst would be planned on
    no statistics until it comes. The sweeper does not wait for it when a table doubled,
    and leaves it the rest (the 10 % rule)."""
    with app.app_context(), autovacuum_on_but_not_yet_on("patients"):
        size = max(_analyzed("patients").reltuples, 0)
        _grow_patients(app, clinic_fr.id, int(size) + 60, "Double")
        _counted("patients", int(size) + 60)
        statistics._last.clear()
        assert statistics.refresh_if_due() == []  # the minute's look: autovacuum's to do
        assert "patients" in statistics.refresh_if_due(utcnow() + timedelta(seconds=1))
        assert _analyzed("patients").reltuples >= size + 60
