"""The SQLAlchemy handle shared by the core, tenants and plugins, and common column types."""

import os
import select
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from psycopg.types.array import ListBinaryDumper
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names follow one rule so Alembic migrations stay stable on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)


_id_lock = threading.Lock()
_last = (0, 0)  # the millisecond and counter of the last id: each id is later than the one before


def new_id() -> uuid.UUID:
    """A time-ordered UUIDv7 (RFC 9562): opaque outside, friendly to B-tree indexes inside.

    Made as Python 3.14's ``uuid.uuid7`` makes it (RFC 9562's method 1): a millisecond
    timestamp, a 42-bit counter, random from a new millisecond and one more for each id made
    within it, then 32 random bits; without the validating constructors (a worker makes two
    per message, and those cost more than the rest of the id's journey). Ids made in a burst
    keep the clock's time; after a clock that went back, ids count on from the last one's
    millisecond until the clock passes it.
    """
    global _last
    with _id_lock:  # threads of a process share the counter: no two ids alike, all in order
        ms, counter = time.time_ns() // 1_000_000, 0
        last_ms, last_counter = _last
        if ms > last_ms:
            random = int.from_bytes(os.urandom(10))
            counter, tail = random >> 32 & _COUNTER_START, random & 0xFFFFFFFF
        else:
            ms, counter = last_ms, last_counter + 1
            if counter > _COUNTER_MAX:
                random = int.from_bytes(os.urandom(10))
                ms, counter, tail = ms + 1, random >> 32 & _COUNTER_START, random & 0xFFFFFFFF
            else:
                tail = int.from_bytes(os.urandom(4))
        _last = ms, counter
    value = (ms & 0xFFFFFFFFFFFF) << 80 | _VERSION_7 | (counter >> 30) << 64 | _VARIANT
    value |= (counter & 0x3FFFFFFF) << 32 | tail
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _UNKNOWN_SAFETY)
    return made


_VERSION_7 = 7 << 76
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # read once: an enum's member is a slow property
_VARIANT = 0b10 << 62
_COUNTER_MAX = (1 << 42) - 1
_COUNTER_START = (1 << 41) - 1  # a new millisecond's counter leaves room to count up


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (what every stored time is)."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; Relais stores aware UTC times")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def id_column() -> Mapped[uuid.UUID]:
    """A primary key column of time-ordered UUIDs made by the app (:func:`new_id`)."""
    return mapped_column(sa.Uuid, primary_key=True, default=new_id)


def created_column() -> Mapped[datetime]:
    """A column of when the row was created (aware UTC), filled on insert."""
    return mapped_column(UTCDateTime, default=utcnow, nullable=False)


def insert_many(
    table: sa.Table,
    rows: list[dict],
    *,
    skip_conflicts: bool = False,
    returning: sa.Column | None = None,
) -> list:
    """Insert ``rows`` (dicts of every column of ``table``) in one statement; returns the
    ``returning`` column of the rows written (none skipped as conflicts), else ``[]``.

    On PostgreSQL, one ``INSERT ... SELECT ... FROM unnest(<an array per column>)``: its
    text is the same whatever the number of rows, so the driver converts it once and the
    server parses it once, where a multi-row VALUES of a thousand rows is a statement of
    its own every time (converting it cost the bulk path more than writing it). Each array
    goes in PostgreSQL's binary format (:func:`install`): measured on a thousand messages,
    events or attempts, a third less Python than rendering it as an array literal, and a
    fifth less work for the server. A column holding one value in every row (the clinic,
    the time, the status...) is sent once, not as an array, unless its type converts its
    values itself (an encrypted column: equal ciphertexts would show equal values); NULL
    in every row (and without a server default), it is left out. Elsewhere, an
    ``executemany``. ``skip_conflicts``: rows breaking a unique constraint are left out (ON
    CONFLICT DO NOTHING).
    """
    if not rows:
        return []
    session = db.session
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        insert = sa.insert(table)
        if skip_conflicts:
            insert = sqlite.insert(table).on_conflict_do_nothing()
        if returning is None:
            session.execute(insert, rows)
            return []
        return list(session.scalars(insert.returning(returning), rows))
    params, given = {}, []
    for column, process in _bind_processors(table, dialect):
        values = [row[column.key] for row in rows]
        one = _shared(column, values)
        if one:
            values = [values[0]]
        values = [process(v) for v in values] if process else values
        if column.server_default is None and all(v is None for v in values):
            continue  # NULL in every row: left out, NULL all the same (a new message's lease...)
        params[f"c{len(given)}"] = values[0] if one else values
        given.append((column, one))
    if all(one for _column, one in given) and len(rows) > 1:  # rows alike but for no column
        column, _one = given[0]
        params["c0"], given[0] = [params["c0"]] * len(rows), (column, False)
    insert = _unnest_insert(
        table, tuple(given), skip_conflicts, returning.name if returning is not None else None
    )
    result = session.execute(insert, params)
    return list(result.scalars()) if returning is not None else []


def _shared(column: sa.Column, values: list) -> bool:
    """Whether every one of ``values`` (a column's, one per row) is the same, so that it can
    be sent once for all the rows. Never for a column whose type converts its values
    itself (an encrypted one: a value encrypted once would show which rows hold the same),
    but for times (:class:`UTCDateTime`)."""
    if isinstance(column.type, sa.TypeDecorator) and not isinstance(column.type, UTCDateTime):
        return False
    first = values[0]
    return values[-1] == first and values.count(first) == len(values)


_PROCESSORS: dict = {}


def _bind_processors(table: sa.Table, dialect) -> list[tuple[sa.Column, Any]]:
    """Each column of ``table`` with the function the dialect converts its values with,
    looked up once per table and dialect (a one-message insert paid it for every column)."""
    key = (table.name, dialect)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = [
            (column, column.type.dialect_impl(dialect).bind_processor(dialect))
            for column in table.columns
        ]
    return _PROCESSORS[key]


_UNNEST_SQL: dict = {}


def _unnest_insert(
    table: sa.Table,
    columns: tuple[tuple[sa.Column, bool], ...],
    skip_conflicts: bool,
    returning: str | None,
) -> sa.TextClause:
    """The INSERT of :func:`insert_many` for ``columns``: (column, sent once for every
    row), parameter ``c<n>`` the n-th's value or array; made once per table and columns
    (``sa.text`` parses its text for parameters each time it is made)."""
    key = (table.name, tuple((c.name, one) for c, one in columns), skip_conflicts, returning)
    if key not in _UNNEST_SQL:
        dialect = postgresql.dialect()
        types = [column.type.compile(dialect=dialect) for column, _one in columns]
        picked = [
            f"CAST(:c{n} AS {types[n]})" if one else f"given.c{n}"
            for n, (_column, one) in enumerate(columns)
        ]
        arrays = [n for n, (_column, one) in enumerate(columns) if not one]
        source = ""
        if arrays:
            unnest = ", ".join(f"CAST(:c{n} AS {types[n]}[])" for n in arrays)
            aliases = ", ".join(f"c{n}" for n in arrays)
            source = f" FROM unnest({unnest}) AS given({aliases})"
        names = ", ".join(f'"{column.name}"' for column, _one in columns)
        _UNNEST_SQL[key] = sa.text(
            f"INSERT INTO {table.name} ({names}) SELECT {', '.join(picked)}{source}"  # noqa: S608
            + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
            + (f' RETURNING "{returning}"' if returning else "")
        )
    return _UNNEST_SQL[key]


def update_many(
    table: sa.Table, rows: list[dict], *, keys: tuple[str, ...] = ("tenant_id", "id"), **same
) -> int:
    """Update many rows of ``table`` in one statement: each of ``rows`` holds a row's
    ``keys`` (its primary key) and the values of its own (the same columns in every row);
    ``same`` are the values every row gets. Returns how many rows changed.

    On PostgreSQL, one ``UPDATE ... FROM unnest(<an array per column>)``: one statement
    whatever the number of rows, where an ``executemany`` runs one per row on the server.
    A column holding one value in every row (the clinic, most often) is sent once, as
    :func:`insert_many` does. Elsewhere, that ``executemany``.
    """
    if not rows:
        return 0
    own = [name for name in rows[0] if name not in keys]
    session = db.session
    if session.get_bind().dialect.name != "postgresql":
        update = (
            sa.update(table)
            .where(*(table.c[k] == sa.bindparam(f"key_{k}") for k in keys))
            .values({**{c: sa.bindparam(f"own_{c}") for c in own}, **same})
        )
        params = [
            {**{f"key_{k}": r[k] for k in keys}, **{f"own_{c}": r[c] for c in own}} for r in rows
        ]
        return session.execute(update, params).rowcount
    given, arrays, found_by = {}, {}, []
    for n, name in enumerate([*keys, *own]):
        values = [r[name] for r in rows]
        if _shared(table.c[name], values):
            given[name] = sa.bindparam(f"a_{n}", values[0], type_=table.c[name].type)
        else:
            arrays[name] = sa.bindparam(
                f"a_{n}", values, type_=postgresql.ARRAY(table.c[name].type)
            )
    if arrays:
        unnest = (
            sa.func.unnest(*arrays.values())
            .table_valued(*(sa.column(name, table.c[name].type) for name in arrays))
            .render_derived(name="given", with_types=False)
        )
        given.update({name: unnest.c[name] for name in arrays})
        # The rows are found by their keys' arrays too (``id = ANY(...)``), not only through
        # the join: planned on statistics that take the clinic for a small part of the table
        # (a table never analyzed, a clinic new since the last analysis), the join alone
        # read the clinic's every row once per given row (50 ms for 16 rows of 20,000).
        found_by = [table.c[k] == sa.any_(arrays[k]) for k in keys if k in arrays]
    update = (
        sa.update(table)
        .where(*(table.c[k] == given[k] for k in keys), *found_by)
        .values({**{c: given[c] for c in own}, **same})
        .execution_options(synchronize_session=False)
    )
    return session.execute(update).rowcount


def install() -> None:
    """Send lists to PostgreSQL in binary; called once by the app factory.

    psycopg sends a list in PostgreSQL's text format unless told otherwise: every element
    rendered, then searched for characters to quote, some 4 µs a timestamp. The hot paths
    send a column's hundred values as one list (:func:`insert_many`, :func:`update_many`,
    :func:`among`), where the binary format costs a tenth of that, and the server parses
    less."""
    if not sa.event.contains(sa.engine.Engine, "connect", _binary_lists):
        sa.event.listen(sa.engine.Engine, "connect", _binary_lists)
    if not sa.event.contains(sa.pool.Pool, "checkout", _still_open):
        sa.event.listen(sa.pool.Pool, "checkout", _still_open)


def _binary_lists(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, psycopg.Connection):
        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def _still_open(dbapi_connection, _record, _proxy) -> None:
    """Replace a pooled PostgreSQL connection the server has closed (a restart, an
    administrator's ``pg_terminate_backend``, an idle timeout) before it is used: a pool
    checkout listener, in place of SQLAlchemy's ``pool_pre_ping``.

    The pre-ping sent ``SELECT 1`` and waited for its answer at every checkout: a round trip
    and a twentieth of an API request's CPU. A connection resting in the pool has read every
    answer to what it sent, so the server has nothing more to say on it; a server that
    closes it sends its reason and the end of the stream, which makes the socket readable.
    So a socket with something to read (or closed) is one the server ended: the pool
    replaces it and, as the pre-ping did, every connection older than it (a restart ended
    them all). Asking the socket costs no round trip. A connection that breaks while in use
    is SQLAlchemy's disconnect handling's, as before: that request fails, the pool is renewed.
    """
    if not isinstance(dbapi_connection, psycopg.Connection):
        return
    try:
        socket = dbapi_connection.fileno()  # raises once the connection is closed or lost
    except psycopg.Error as exc:
        raise sa.exc.InvalidatePoolError("the connection is closed") from exc
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    if poller.poll(0):
        raise sa.exc.InvalidatePoolError("the server closed the connection")


def among(
    column: sa.ColumnElement, values: Any = None, *, name: str | None = None
) -> sa.ColumnElement[bool]:
    """``column IN values`` for a long list of values. On PostgreSQL, ``column = ANY(<one
    array>)``: the statement's text stays the same whatever the number of values, where an
    IN list is rendered and converted again, a placeholder per value, at every execution
    (a worker's batch of a hundred ids). Elsewhere, the IN list. With ``name`` instead of
    ``values``, for a statement built once: the values are given at each execution, as the
    parameter ``name``."""
    if db.session.get_bind().dialect.name != "postgresql":
        return column.in_(sa.bindparam(name, expanding=True) if name else list(values))
    array = _ARRAYS.get(column.type)
    if array is None:
        array = _ARRAYS[column.type] = postgresql.ARRAY(column.type)
    given = (
        sa.bindparam(name, type_=array) if name else sa.bindparam(None, list(values), type_=array)
    )
    return column == sa.any_(given)


_ARRAYS: dict = {}  # a column type -> the type of an array of it, made once
