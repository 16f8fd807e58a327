"""Migrations: the core's history and each plugin's branch, their naming rules, a schema
equal to the models, every plugin table in its own plugin's branch, a database migrated
before the branches upgraded without losing a row, row-level security on every tenant-owned
table (PostgreSQL), and a clear answer from a command or a page on a database not migrated.
"""

import os
import re
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa
import time_machine
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core import schema
from core.app import create_app
from core.db import db
from core.plugins import host
from core.web.cli import main
from plugins.channels.outbox.plugin import OutboxDelivery
from plugins.channels.webpush.subscriptions import PushSubscription
from plugins.features import appointments
from plugins.features.otp.models import Challenge
from tenants.scoping import TenantOwned, tenant_scope
from tests.conftest import drop_database, ensure_database
from tests.worlds import (
    DATABASE_URL,
    SERVER,
    TEST_CONFIG,
    make_clinic,
    make_patient,
    make_staff,
)

ROOT = Path(__file__).resolve().parents[1]
CORE_VERSIONS = ROOT / "migrations" / "versions"
NAME = re.compile(r"^(\d{4})_[a-z0-9]+(?:_[a-z0-9]+)*\.py$")
# The last commit whose core history still created the built-in plugins' tables (up to 0008).
BEFORE_BRANCHES = "aa48f24f7e9fa385c6a96de3c17fbc20549de953"
VERSION_NUM_LENGTH = 32  # alembic_version.version_num is a VARCHAR(32)


def script(app):
    return schema.script_directory(app)


def branch_revisions(app, folder: Path) -> list:
    """The revisions whose files are in ``folder``, oldest first."""
    everything = reversed(list(script(app).walk_revisions()))
    return [r for r in everything if Path(r.path).parent == folder]


def plugin_branches(app) -> dict[str, Path]:
    with app.app_context():
        return schema.plugin_migrations(host())


def revision_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")


def version_rows(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))


def ids(value) -> set[str]:
    return set() if value is None else {value} if isinstance(value, str) else set(value)


def expected_rows(app) -> set[str]:
    """What alembic_version holds on a database at every head: one row per head, but none
    for a head another head depends on (reminders' row stands for appointments')."""
    heads = script(app).get_heads()
    depended = {
        script(app).get_revision(d).revision
        for head in heads
        for d in ids(script(app).get_revision(head).dependencies)
    }
    return set(heads) - depended


# --- naming and history -------------------------------------------------------------------


def test_the_built_in_plugins_with_tables_ship_their_branches(app):
    assert set(plugin_branches(app)) == {
        "outbox",
        "webpush",
        "appointments",
        "reminders",
        "otp",
        "messaging",
        "vaccination",
        "campaigns",
        "callbacks",
    }


def test_core_revision_files_are_named_nnnn_slug_after_their_id(app):
    files = revision_files(CORE_VERSIONS)
    assert files, "no migration"
    for name in files:
        assert NAME.match(name), f"{name}: migrations are named NNNN_slug.py"
    by_file = {Path(r.path).name: r.revision for r in branch_revisions(app, CORE_VERSIONS)}
    assert set(by_file) == set(files), "a file in versions/ is not a revision"
    for name, revision in by_file.items():
        assert revision == name[:4], f"{name} has revision id {revision!r}"


def test_plugin_revision_files_are_named_plugin_nnnn_slug_after_their_id(app):
    for plugin, folder in plugin_branches(app).items():
        files = revision_files(folder)
        assert files, f"{plugin}: an empty migrations folder"
        by_file = {Path(r.path).name: r.revision for r in branch_revisions(app, folder)}
        assert set(by_file) == set(files), f"{plugin}: a file in migrations/ is not a revision"
        for name, revision in by_file.items():
            own = name.removeprefix(f"{plugin}_")
            assert own != name and NAME.match(own), f"{plugin}/{name}: not {plugin}_NNNN_slug.py"
            assert revision == f"{plugin}_{own[:4]}", f"{plugin}/{name} has id {revision!r}"
            assert len(revision) <= VERSION_NUM_LENGTH


def labels(revision) -> set[str]:
    """The labels the revision's file declares (Alembic also lists its ancestors')."""
    return ids(revision.module.branch_labels)


def test_the_core_history_is_linear_numbered_in_order_and_labelled_core(app):
    history = branch_revisions(app, CORE_VERSIONS)
    assert history[0].down_revision is None
    assert labels(history[0]) == {"core"}
    for number, revision in enumerate(history, start=1):
        assert revision.revision == f"{number:04d}"
        if number > 1:
            assert revision.down_revision == f"{number - 1:04d}"
            assert not labels(revision)
        assert not revision.dependencies, "the core depends on no plugin"
        assert not revision.is_merge_point
    assert history[-1].revision in script(app).get_heads()


def test_each_plugin_branch_is_linear_labelled_with_its_name_and_independent_of_the_core(app):
    core = {r.revision for r in branch_revisions(app, CORE_VERSIONS)}
    for plugin, folder in plugin_branches(app).items():
        history = branch_revisions(app, folder)
        assert history[0].down_revision is None, f"{plugin}: its branch starts from nothing"
        assert labels(history[0]) == {plugin}
        for number, revision in enumerate(history, start=1):
            if number > 1:
                assert revision.down_revision == f"{plugin}_{number - 1:04d}"
                assert not labels(revision)
            assert not revision.is_merge_point
            # The core is upgraded first, whole: a dependency on one of its revisions would
            # make the core's row in alembic_version rest on the plugin's.
            depends = {script(app).get_revision(d).revision for d in ids(revision.dependencies)}
            assert not depends & core, f"{revision.revision} depends on the core"
        assert history[-1].revision in script(app).get_heads()


# --- the schema -----------------------------------------------------------------------------


def schema_differences(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_migrated_postgresql_schema_matches_the_models(app):
    with app.app_context():
        assert schema_differences(db.engine) == []
        assert version_rows(db.engine) == expected_rows(app)


def plugin_tables(app) -> dict[str, set[str]]:
    """Each installed plugin's tables: those of the models its package defines."""
    with app.app_context():
        packages = {
            name: plugin.__package__
            for name, plugin in host().pm.list_name_plugin()
            if getattr(plugin, "__package__", None)
        }
    owned: dict[str, set[str]] = {name: set() for name in packages}
    for mapper in db.Model.registry.mappers:
        module = mapper.class_.__module__
        for name, package in packages.items():
            if module == package or module.startswith(package + "."):
                owned[name].add(mapper.local_table.name)
    return owned


def fresh_database(suffix: str) -> str:
    url = sa.make_url(DATABASE_URL)
    url = url.set(database=f"{url.database}_{suffix}")
    drop_database(url.render_as_string(hide_password=False))
    ensure_database(url.render_as_string(hide_password=False))
    return url.render_as_string(hide_password=False)


def heads_in(app, folder: Path) -> set[str]:
    return {r.revision for r in branch_revisions(app, folder)}


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_the_core_creates_no_plugin_table_and_each_branch_creates_its_own(app):
    owned = plugin_tables(app)
    assert owned["appointments"] == {"appointments"}
    assert owned["otp"] == {"otp_challenges"}
    every_plugin_table = set().union(*owned.values())
    url = fresh_database("branches")
    other = create_app({**TEST_CONFIG, "DATABASE_URL": url})
    try:
        with other.app_context():
            flask_migrate.upgrade(revision="core@head")
            engine = db.engine
            core_tables = tables(engine)
            assert not core_tables & every_plugin_table, "the core created a plugin's table"
            assert core_tables == set(db.metadata.tables) - every_plugin_table
            for plugin in plugin_branches(app):
                before = tables(engine)
                flask_migrate.upgrade(revision=f"{plugin}@head")
                assert owned[plugin] <= tables(engine), f"{plugin}: its tables are missing"
                # What appeared is this plugin's, or a plugin's its branch depends on.
                applied = schema.applied(script(other), tuple(version_rows(engine)))
                done = {p for p, f in plugin_branches(app).items() if heads_in(other, f) <= applied}
                assert plugin in done
                assert tables(engine) - before <= set().union(*(owned[p] for p in done))
            assert schema_differences(engine) == []
            assert version_rows(engine) == expected_rows(other)
            assert schema.not_migrated(other) is None
            engine.dispose()
    finally:
        drop_database(url)


def test_db_upgrade_on_a_fresh_sqlite_file_builds_the_models_schema(app, tmp_path):
    """The path ``relais demo`` takes on a first run."""
    url = f"sqlite:///{tmp_path / 'relais.db'}"

    done = relais("db", "upgrade", url=url, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(url)
    try:
        assert schema_differences(engine) == []
        assert version_rows(engine) == expected_rows(app)
        with engine.connect() as conn:
            countries = set(conn.scalars(sa.text("SELECT code FROM countries")))
        assert "FR" in countries
    finally:
        engine.dispose()


# --- a database migrated before the plugins had branches ----------------------------------


def history_before_branches(folder: Path) -> Path:
    """The core's migrations folder as it was up to 0008, from git: env.py, the versions."""
    (folder / "versions").mkdir(parents=True)
    for name in ("alembic.ini", "script.py.mako"):
        shutil.copy(ROOT / "migrations" / name, folder / name)
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", BEFORE_BRANCHES, "migrations/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    versions = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", BEFORE_BRANCHES, "migrations/versions/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "migrations/env.py" in listed and len(versions) == 8
    for path in ("migrations/env.py", *versions):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE_BRANCHES}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (folder / path.removeprefix("migrations/")).write_text(text)
    return folder


MOVED = {
    "outbox_deliveries": 1,
    "push_subscriptions": 1,
    "appointments": 1,
    "reminders": 3,  # 72 h, 24 h and 2 h before
    "otp_challenges": 1,
}


def fill_moved_tables(application) -> None:
    """A clinic with a patient, an appointment and its reminders, a push subscription, a
    code and a development outbox delivery: a row or more in every table that moves."""
    plugins = ("fr", "appointments", "reminders", "outbox", "webpush", "otp")
    now = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
    clinic = make_clinic(application, "demo", plugins=plugins)
    doctor = make_staff(application, clinic, "practitioner")
    patient = make_patient(application, clinic, language="fr")
    with time_machine.travel(now, tick=False), application.app_context(), tenant_scope(clinic.id):
        appointment = appointments.create(
            clinic,
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": (now + timedelta(days=5)).isoformat(),
                "duration_minutes": 30,
            },
        )
        db.session.flush()
        db.session.add_all(
            [
                PushSubscription(
                    patient_id=patient.id,
                    endpoint="https://push.example/send/abc",
                    p256dh="BNc" + "A" * 84,
                    auth="c2VjcmV0LWF1dGg",
                    device="Firefox on Linux",
                ),
                OutboxDelivery(
                    message_id=uuid.uuid4(),
                    channel="sms",
                    recipient="+33612345678",
                    text=f"Rendez-vous {appointment.id}",
                ),
            ]
        )
        # Written with the columns of the branch's first revision only (a Core insert): the
        # later ones (``spent_at``) are added by the upgrade this database is waiting for.
        db.session.execute(
            sa.insert(Challenge.__table__).values(
                tenant_id=clinic.id,
                id=uuid.uuid4(),
                purpose="patient",
                phone_digest="0" * 64,
                phone="+33612345678",
                code_digest="1" * 64,
                channel="sms",
                wrong_tries=0,
                created_at=now,
                expires_at=now + timedelta(minutes=10),
            )
        )
        db.session.commit()


def counts(engine) -> dict[str, int]:
    # As the owner of the tables: row-level security lets every row through.
    with engine.connect() as conn:
        return {t: conn.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in MOVED}  # noqa: S608


def row_level_security(engine, names) -> dict[str, bool]:
    with engine.connect() as conn:
        query = sa.text("SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(:t)")
        return dict(conn.execute(query, {"t": sorted(names)}).all())


def test_a_database_migrated_before_the_branches_upgrades_keeping_every_row(app, tmp_path):
    old_history = history_before_branches(tmp_path / "migrations")
    url = fresh_database("history")
    old = create_app({**TEST_CONFIG, "DATABASE_URL": url})
    try:
        with old.app_context():
            flask_migrate.upgrade(directory=str(old_history), revision="0008")
            assert version_rows(db.engine) == {"0008"}
            # The core's revisions after 0008 (columns today's models write) come first.
            flask_migrate.upgrade(revision="core@head")
        fill_moved_tables(old)
        with old.app_context():
            before = counts(db.engine)
            assert before == MOVED
            assert "missing" in schema.not_migrated(old)

            schema.upgrade()

            engine = db.engine
            assert counts(engine) == before
            assert version_rows(engine) == expected_rows(old)
            assert schema.not_migrated(old) is None
            assert schema_differences(engine) == []
            assert all(row_level_security(engine, MOVED).values())
            engine.dispose()
    finally:
        drop_database(url)


# --- row-level security -------------------------------------------------------------------


def tenant_owned_tables() -> set[str]:
    """Tables of TenantOwned models, and link tables between them (no model of their own)."""
    mapped = {m.local_table.name: m.class_ for m in db.Model.registry.mappers}
    owned = {name for name, cls in mapped.items() if issubclass(cls, TenantOwned)}
    links = {
        table.name
        for table in db.metadata.tables.values()
        if table.name not in mapped
        and "tenant_id" in table.c
        and {fk.column.table.name for fk in table.foreign_keys} <= owned
    }
    return owned | links


def test_every_tenant_owned_table_has_row_level_security(app):
    tables = tenant_owned_tables()
    assert {"patients", "users", "api_keys", "audit_events", "patient_practitioners"} <= tables
    assert set(MOVED) <= tables
    with app.app_context(), db.engine.connect() as conn:
        protected = dict(
            conn.execute(
                sa.text("SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(:t)"),
                {"t": sorted(tables)},
            ).all()
        )
        policies = dict(
            conn.execute(
                sa.text("SELECT tablename, qual FROM pg_policies WHERE tablename = ANY(:t)"),
                {"t": sorted(tables)},
            ).all()
        )
    for table in tables:
        assert protected.get(table) is True, f"{table}: row-level security is off"
        assert "relais.tenant_id" in policies.get(table, ""), f"{table}: no tenant policy"


def test_every_table_with_a_tenant_id_has_forced_row_level_security_and_a_policy(app):
    """Walks the migrated schema, not the models: a table any migration (core or plugin)
    made with a ``tenant_id`` column, with or without a model of its own, is protected, and
    the protection also holds for the tables' owner (FORCE)."""
    with app.app_context(), db.engine.connect() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
                " (SELECT string_agg(p.qual, ' ') FROM pg_policies p"
                "  WHERE p.schemaname = 'public' AND p.tablename = c.relname)"
                " FROM information_schema.columns col"
                " JOIN pg_class c ON c.relname = col.table_name"
                " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = col.table_schema"
                " WHERE col.table_schema = 'public' AND col.column_name = 'tenant_id'"
                " AND c.relkind = 'r'"
            )
        ).all()
    assert len(tables) >= 15 and "tenant_disabled_plugins" in {t[0] for t in tables}
    unprotected = [
        name
        for name, enabled, forced, policy in tables
        if not (enabled and forced and "relais.tenant_id" in (policy or ""))
    ]
    assert unprotected == [], (
        f"without forced row-level security and a tenant policy: {unprotected}"
    )


def test_row_level_security_lets_a_transaction_see_its_tenant_only(app):
    """The second wall: even a query that forgets the filter sees one clinic's rows."""
    mine, theirs = make_clinic(app, "demo"), make_clinic(app, "other")
    make_patient(app, mine)
    make_patient(app, theirs)
    count = sa.text("SELECT count(*) FROM patients")
    with app.app_context(), db.engine.connect() as conn:
        conn.exec_driver_sql("SET ROLE relais_app")
        try:
            assert conn.scalar(count) == 0  # no tenant set: no rows
            conn.execute(
                sa.text("SELECT set_config('relais.tenant_id', :t, false)"), {"t": str(mine.id)}
            )
            assert conn.scalar(count) == 1
            assert conn.scalar(sa.text("SELECT tenant_id FROM patients")) == mine.id
            conn.execute(sa.text("SELECT set_config('relais.tenant_id', '*', false)"))
            assert conn.scalar(count) == 2
        finally:
            conn.rollback()
            conn.exec_driver_sql("RESET ROLE")
            conn.exec_driver_sql("RESET relais.tenant_id")
            conn.commit()


# --- a database not migrated --------------------------------------------------------------


def relais(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed ``relais`` command, with a deployment's environment on ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "FLASK_"))}
    env.update(
        RELAIS_DATABASE_URL=url,
        RELAIS_SECRET_KEY=TEST_CONFIG["SECRET_KEY"],
        RELAIS_ENCRYPTION_KEYS=TEST_CONFIG["ENCRYPTION_KEYS"],
    )
    executable = shutil.which("relais", path=str(Path(sys.executable).parent))
    assert executable
    return subprocess.run(
        [executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", [("tenants", "list"), ("worker", "--burst")])
def test_a_command_on_an_empty_database_says_to_run_db_upgrade(tmp_path, command):
    done = relais(*command, url=f"sqlite:///{tmp_path / 'relais.db'}", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr == (
        "Error: The database has no tables yet: run `relais db upgrade` to create them.\n"
    )


def test_a_command_on_a_database_behind_names_what_is_missing(tmp_path):
    behind = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'relais.db'}"})
    runner = behind.test_cli_runner()
    assert runner.invoke(main, ["db", "upgrade", "core@head"]).exit_code == 0

    done = runner.invoke(main, ["tenants", "list"])

    assert done.exit_code == 2
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert done.stderr.startswith("Error: The database is not migrated to this version")
    assert "otp_0003" in done.stderr  # the branch's head
    assert done.stderr.endswith("run `relais db upgrade`.\n")
    # Help is still there to read, without a database.
    assert runner.invoke(main, ["tenants", "--help"]).exit_code == 0

    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    listed = runner.invoke(main, ["tenants", "list"])
    assert listed.exit_code == 0, listed.output
    with behind.app_context():
        db.engine.dispose()


def test_a_process_with_fewer_plugins_uses_a_database_their_branches_left_ahead(app):
    """Rows of branches it does not know (a plugin installed elsewhere) are no reason to
    refuse: the branches it knows are at their heads."""
    fewer = create_app({**TEST_CONFIG, "PLUGINS": ("plugins.channels.outbox.plugin",)})

    assert set(plugin_branches(fewer)) == {"outbox"}
    assert schema.not_migrated(fewer) is None
    assert fewer.test_cli_runner().invoke(main, ["tenants", "list"]).exit_code == 0
    with fewer.app_context():
        db.engine.dispose()


def test_pages_and_the_api_answer_503_on_a_database_not_migrated(tmp_path, caplog):
    empty = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'relais.db'}"})
    client = empty.test_client()

    page = client.get("/login", base_url=f"https://demo.{SERVER}")
    api = client.get("/api/v1/patients", base_url=f"https://demo.{SERVER}")

    assert page.status_code == 503
    assert "Try again in a few minutes" in page.text
    assert "Réessayez dans quelques minutes" in page.text  # every language: no clinic is read
    assert 'lang="de"' in page.text and 'lang="it"' in page.text and 'lang="nl"' in page.text
    assert page.headers["Retry-After"]
    assert api.status_code == 503
    assert api.json["error"]["code"] == "service_unavailable"
    assert "run `relais db upgrade`" in caplog.text
    with empty.app_context():
        db.engine.dispose()
