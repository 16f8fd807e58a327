"""The database schema's versions: the core's Alembic history and each installed plugin's
branch, and whether a database is migrated to all of them.

A plugin with tables keeps its Alembic revisions in a ``migrations/`` folder of its package,
beside its plugin module; its branch is labelled with the plugin's name. ``relais db
upgrade`` finds those folders for every installed plugin (built-in or entry point) and
upgrades the core's history, then every branch. A command or a request that meets a
database behind them says so and how to fix it (exit code 2, a 503 page) instead of failing
on a missing table.
"""

import functools
import os
from pathlib import Path

import flask_migrate
import sqlalchemy as sa
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import Flask, current_app, jsonify, request
from markupsafe import escape

from core.db import db
from core.extensions import migrate
from core.plugins import PluginHost

FOLDER = "migrations"
CORE = "core"  # the branch label of the core's history
UPGRADE = "relais db upgrade"


def plugin_migrations(plugins: PluginHost) -> dict[str, Path]:
    """The installed plugins that ship migrations: plugin name -> its versions folder.

    The folder is ``migrations/`` beside the plugin's module, when that module is part of a
    package (a lone top-level module has no folder of its own).
    """
    found = {}
    for name, info in plugins.info.items():
        if info.folder is not None and (info.folder / FOLDER).is_dir():
            found[name] = info.folder / FOLDER
    return found


def version_locations(app: Flask, directory: str | None = None) -> list[str]:
    """Where Alembic reads revisions: the core's history first, then each plugin's branch.

    :param directory: the core's migrations folder, if not the app's (``relais db -d``).
    """
    core = Path(directory or app.extensions["migrate"].directory) / "versions"
    plugins = plugin_migrations(app.extensions["relais"].plugins)
    return [str(core), *(str(folder) for _name, folder in sorted(plugins.items()))]


def _configure_alembic(config: Config) -> Config:
    """Flask-Migrate's hook on every Alembic configuration it builds (``relais db ...``)."""
    # path_separator is "os" in alembic.ini: the list is joined the way Alembic splits it.
    locations = version_locations(current_app, config.get_main_option("script_location"))
    config.set_main_option("version_locations", os.pathsep.join(locations))
    return config


def upgrade(sql: bool = False) -> None:
    """Upgrade the core's history to its head, then every installed plugin's branch.

    The core goes first, whole: a plugin's tables refer to the core's (patients, messages)
    and its branch declares no dependency on a core revision, so that the core's place in
    the version table never rests on a plugin's. A plugin that needs another's tables says
    so with ``depends_on`` (reminders on appointments).

    :param sql: print the SQL instead of running it.
    """
    flask_migrate.upgrade(revision=f"{CORE}@head", sql=sql)
    # Offline there is no version table to start from: start where the first step ended.
    flask_migrate.upgrade(revision=f"{CORE}@head:heads" if sql else "heads", sql=sql)


def script_directory(app: Flask) -> ScriptDirectory:
    """The core's history and the installed plugins' branches, as Alembic sees them."""
    return _script(app.extensions["migrate"].directory, tuple(version_locations(app)))


@functools.lru_cache(maxsize=8)
def _script(directory: str, locations: tuple[str, ...]) -> ScriptDirectory:
    # Reading every revision file takes a while: once per process and set of plugins.
    return ScriptDirectory(directory, version_locations=list(locations))


def applied(script: ScriptDirectory, current: tuple[str, ...]) -> set[str]:
    """Every revision a database whose version table holds ``current`` has run: those rows,
    their ancestors and what they depend on (Alembic keeps no row for a revision another
    row depends on). Rows this installation does not know (a plugin installed elsewhere)
    are left out.
    """
    done: set[str] = set()
    todo = [rev for rev in current if _known(script, rev)]
    while todo:
        revision = script.get_revision(todo.pop())
        if revision.revision in done:
            continue
        done.add(revision.revision)
        for parent in (*_ids(revision.down_revision), *_ids(revision.dependencies)):
            todo.append(script.get_revision(parent).revision)
    return done


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:  # Alembic's "Can't locate revision"
        return False


def _ids(value) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def not_migrated(app: Flask) -> str | None:
    """Why the app's database cannot be used as it is, in one sentence naming the fix; None
    when every branch the installed code knows is at its head.

    Revisions the code does not know (a plugin's, run by processes with more plugins
    installed) are not a reason: those processes check their own.
    """
    with app.app_context(), db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    script = script_directory(app)
    missing = set(script.get_heads()) - applied(script, current)
    if not missing:
        return None
    if not current:
        return f"The database has no tables yet: run `{UPGRADE}` to create them."
    return (
        f"The database is not migrated to this version of Relais and its plugins "
        f"(missing {', '.join(sorted(missing))}): run `{UPGRADE}`."
    )


def init_app(app: Flask) -> None:
    """Point Flask-Migrate at every branch, and answer 503 while the database is behind."""
    if _configure_alembic not in migrate.configure_callbacks:
        migrate.configure(_configure_alembic)
    # A missing table or column is ProgrammingError on PostgreSQL, OperationalError on SQLite.
    app.register_error_handler(sa.exc.ProgrammingError, _database_behind)
    app.register_error_handler(sa.exc.OperationalError, _database_behind)


# A deployment's upgrade window: the page reads nothing of the database (not even the
# clinic's language), so it says it in every language Relais speaks.
UNAVAILABLE = "Relais is not available while its database is upgraded. Try again in a few minutes."
SAYS = {
    "fr": "Relais est indisponible pendant la mise à jour de sa base de données. "
    "Réessayez dans quelques minutes.",
    "de": "Relais ist während der Aktualisierung seiner Datenbank nicht erreichbar. "
    "Versuchen Sie es in einigen Minuten erneut.",
    "it": "Relais non è disponibile durante l'aggiornamento del suo database. "
    "Riprovi tra qualche minuto.",
    "nl": "Relais is niet beschikbaar terwijl de database wordt bijgewerkt. "
    "Probeer het over enkele minuten opnieuw.",
    "en": UNAVAILABLE,
}
PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>503 Relais</title>
<h1>Relais</h1>{messages}</html>
"""


def _database_behind(exc: sa.exc.DBAPIError):
    """A request failed on the database: when that is because the database is not
    migrated, a 503 (the operator's fix in the log); any other failure goes on as it was."""
    db.session.rollback()
    try:
        problem = not_migrated(current_app._get_current_object())
    except sa.exc.SQLAlchemyError:
        problem = None  # the database does not answer at all: the original error says more
    if problem is None:
        raise exc
    current_app.logger.error(problem)
    headers = {"Retry-After": "60"}
    if request.path.startswith(("/api/", "/me/api/")):
        body = {"error": {"code": "service_unavailable", "message": UNAVAILABLE}}
        return jsonify(body), 503, headers
    messages = "".join(f'<p lang="{lang}">{escape(text)}</p>' for lang, text in SAYS.items())
    return PAGE.format(messages=messages), 503, headers
