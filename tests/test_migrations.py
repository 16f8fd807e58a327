"""Migrations: their naming rule, a linear history, a schema equal to the models, and
row-level security on every tenant-owned table (PostgreSQL)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.db import db
from tenants.scoping import TenantOwned
from tests.worlds import TEST_CONFIG, make_clinic, make_patient

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ROOT / "migrations" / "versions"
NAME = re.compile(r"^(\d{4})_[a-z0-9]+(?:_[a-z0-9]+)*\.py$")


def revisions() -> list:
    """Every revision, oldest first."""
    script = ScriptDirectory(str(ROOT / "migrations"))
    return list(reversed(list(script.walk_revisions())))


def test_revision_files_are_named_nnnn_slug_after_their_id():
    files = sorted(p.name for p in VERSIONS.glob("*.py") if p.name != "__init__.py")
    assert files, "no migration"
    for name in files:
        assert NAME.match(name), f"{name}: migrations are named NNNN_slug.py"
    by_file = {Path(r.path).name: r.revision for r in revisions()}
    assert set(by_file) == set(files), "a file in versions/ is not a revision"
    for name, revision in by_file.items():
        assert revision == name[:4], f"{name} has revision id {revision!r}"


def test_history_is_linear_and_numbered_in_order():
    history = revisions()
    script = ScriptDirectory(str(ROOT / "migrations"))
    assert len(script.get_heads()) == 1
    assert history[0].down_revision is None
    for number, revision in enumerate(history, start=1):
        assert revision.revision == f"{number:04d}"
        if number > 1:
            assert revision.down_revision == f"{number - 1:04d}"
        assert not revision.branch_labels
        assert not revision.is_merge_point


def schema_differences(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_migrated_postgresql_schema_matches_the_models(app):
    with app.app_context():
        assert schema_differences(db.engine) == []


def test_db_upgrade_on_a_fresh_sqlite_file_builds_the_models_schema(tmp_path):
    """The path ``relais demo`` takes on a first run."""
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "FLASK_"))}
    env.update(
        RELAIS_DATABASE_URL=url,
        RELAIS_SECRET_KEY=TEST_CONFIG["SECRET_KEY"],
        RELAIS_ENCRYPTION_KEYS=TEST_CONFIG["ENCRYPTION_KEYS"],
    )
    executable = shutil.which("relais", path=str(Path(sys.executable).parent))
    assert executable

    done = subprocess.run(
        [executable, "db", "upgrade"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(url)
    try:
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == (
                revisions()[-1].revision
            )
            countries = set(conn.scalars(sa.text("SELECT code FROM countries")))
        assert "FR" in countries
    finally:
        engine.dispose()


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
