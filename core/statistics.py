"""The planner's statistics, kept fresh by the sweeper, with or without PostgreSQL's autovacuum.

PostgreSQL chooses each query's plan from its tables' statistics, which autovacuum refreshes
as tables change. With autovacuum off (some managed or tuned deployments, the test machines)
tables are never analyzed: the planner guesses their contents, and a connection keeps the
plan it made while they were small for as long as it lives. The guesses go wrong as tables
grow: a clinic's whole message index read to find one webhook's hundred messages, a message
log page sorting every message of the clinic. Sending's statements find their rows by
primary key whatever the statistics (:func:`core.delivery.lifecycle.claim`,
:func:`core.db.update_many`, migration 0021), though they still run faster on good ones;
every other query depends on them.

So the sweeper analyzes the tables that changed enough since they were last analyzed: once a
minute by autovacuum's own default rule (50 rows plus 10 % of the table), when autovacuum is
off; and at every pass (each second) those that more than doubled, or that were never
analyzed and took 50 rows, whether autovacuum is on or off. The second rule is for a new
deployment's first burst: with no statistics the planner takes a clinic for 0.5 % of a
table, and plans made on that guess read a clinic's every message for each batch a worker
records (50 ms a batch at 20,000 messages); waiting for the minute held sending through
Twilio to a sixth of its speed for that minute. Autovacuum looks once a minute too (its
naptime), so it leaves the same gap. Doubling keeps those analyses few (ten from 50 rows to
50,000) and cheap (small tables). ANALYZE reads a sample of at most 30,000 rows a table, and
makes every connection plan its queries on those tables again.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa

from core.db import db, utcnow

EVERY = timedelta(minutes=1)
THRESHOLD, SCALE = 50, 0.1  # autovacuum_analyze_threshold and _scale_factor's defaults
DOUBLED = 1.0  # the scale of the rule looked at every pass
_LOCK = 0x52454C4149535354  # one sweeper at a time analyzes (pg_try_advisory_xact_lock)
_CHANGED = sa.text(
    "SELECT c.relname FROM pg_class c"
    " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
    " AND pg_stat_get_mod_since_analyze(c.oid) > :threshold + :scale * greatest(c.reltuples, 0)"
    " AND pg_has_role(c.relowner, 'MEMBER')"  # those it may analyze (else a warning a pass)
    " ORDER BY c.relname"
)
_AUTOVACUUM = sa.text("SELECT current_setting('autovacuum')")
_last: dict[str, datetime] = {}


def refresh_if_due(now: datetime | None = None) -> list[str]:
    """Analyze the tables that changed enough: by the 10 % rule (autovacuum off) if this
    process did not look in the last minute, else those that doubled; returns their names."""
    now = now or utcnow()
    if db.engine.dialect.name != "postgresql":
        return []
    if now - _last.get("at", now - EVERY) < EVERY:
        return refresh(DOUBLED)
    _last["at"] = now
    return refresh()


def refresh(scale: float = SCALE) -> list[str]:
    """Analyze the tables of the schema that changed by more than 50 rows plus ``scale``
    of their size (10 %) since their last analysis; returns their names. By a smaller
    scale than :data:`DOUBLED`, only when autovacuum is off (else it does that).

    Runs on a connection of its own as the database's user (the tables' owner), not in the
    app role the ORM's transactions take; tables another user owns are left alone (their
    owner's autovacuum or jobs keep them). Another sweeper doing it at the same moment:
    this one leaves it.
    """
    with db.engine.begin() as conn:
        if scale < DOUBLED and conn.scalar(_AUTOVACUUM) == "on":
            return []
        if not conn.scalar(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}):
            return []
        tables = list(conn.scalars(_CHANGED, {"threshold": THRESHOLD, "scale": scale}))
        for table in tables:
            conn.exec_driver_sql(f'ANALYZE "{table}"')
    return tables
