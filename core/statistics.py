"""The planner's statistics, kept fresh by the sweeper when PostgreSQL's autovacuum is off.

PostgreSQL chooses each query's plan from its tables' statistics, which autovacuum refreshes
as tables change. With autovacuum off (some managed or tuned deployments, the test machines)
tables are never analyzed: the planner guesses their contents, and a connection keeps the
plan it made while they were small for as long as it lives. The guesses go wrong as tables
grow: a clinic's whole message index read to find one webhook's hundred messages, a message
log page sorting every message of the clinic. Sending itself does not depend on this (its
statements find rows by primary key: see :func:`core.delivery.lifecycle.claim` and migration
0021), but every other query does.

So, once a minute, the sweeper analyzes the tables that changed enough since they were last
analyzed, by autovacuum's own default rule (50 rows plus 10 % of the table). ANALYZE reads a
sample of at most 30,000 rows a table, and makes every connection plan its queries on those
tables again.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa

from core.db import db, utcnow

EVERY = timedelta(minutes=1)
THRESHOLD, SCALE = 50, 0.1  # autovacuum_analyze_threshold and _scale_factor's defaults
_LOCK = 0x52454C4149535354  # one sweeper at a time analyzes (pg_try_advisory_xact_lock)
_CHANGED = sa.text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.schemaname = current_schema()"
    " AND s.n_mod_since_analyze > :threshold + :scale * greatest(c.reltuples, 0)"
    " ORDER BY s.relname"
)
_last: dict[str, datetime] = {}


def refresh_if_due(now: datetime | None = None) -> list[str]:
    """Analyze the tables that changed enough, if autovacuum is off and this process did
    not look in the last minute; returns their names."""
    now = now or utcnow()
    if db.engine.dialect.name != "postgresql" or now - _last.get("at", now - EVERY) < EVERY:
        return []
    _last["at"] = now
    return refresh()


def refresh() -> list[str]:
    """Analyze the tables of the schema that changed by more than 50 rows plus 10 % since
    their last analysis, when autovacuum is off (else it does it); returns their names.

    Runs on a connection of its own as the database's user (the tables' owner), not in the
    app role the ORM's transactions take; with another user, PostgreSQL skips the tables
    with a warning. Another sweeper doing it at the same moment: this one leaves it.
    """
    with db.engine.begin() as conn:
        if conn.scalar(sa.text("SELECT current_setting('autovacuum')")) == "on":
            return []
        if not conn.scalar(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}):
            return []
        tables = list(conn.scalars(_CHANGED, {"threshold": THRESHOLD, "scale": SCALE}))
        for table in tables:
            conn.exec_driver_sql(f'ANALYZE "{table}"')
    return tables
