"""SQL expressions over messages whose spelling differs between PostgreSQL and SQLite.

Written as SQLAlchemy constructs compiled per dialect, so the queries that use them (message
log, KPIs) are the same on both databases.
"""

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from core.delivery.models import Message


class _CurrentChannel(FunctionElement):
    """``channels[channel_index]``: the channel a message is on (NULL past the plan's end)."""

    type = sa.String()
    name = "relais_current_channel"
    inherit_cache = True


class _SecondsBetween(FunctionElement):
    """``end - start`` in seconds, as a float."""

    type = sa.Float()
    name = "relais_seconds_between"
    inherit_cache = True


@compiles(_CurrentChannel)
def _current_channel(element, compiler, **kw):  # PostgreSQL: json ->> integer
    channels, index = (compiler.process(c, **kw) for c in element.clauses)
    return f"({channels} ->> {index})"


@compiles(_CurrentChannel, "sqlite")
def _current_channel_sqlite(element, compiler, **kw):
    channels, index = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_extract({channels}, '$[' || {index} || ']')"


@compiles(_SecondsBetween)
def _seconds_between(element, compiler, **kw):  # PostgreSQL
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"date_part('epoch', {end} - {start})"  # double precision: EXTRACT's numeric is slower


@compiles(_SecondsBetween, "sqlite")
def _seconds_between_sqlite(element, compiler, **kw):
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def current_channel() -> sa.ColumnElement[str]:
    """The channel a message is on now: the one it was sent by, once sent."""
    return _CurrentChannel(Message.channels, Message.channel_index)


def seconds_between(start, end) -> sa.ColumnElement[float]:
    return _SecondsBetween(start, end)


def due_at() -> sa.ColumnElement:
    """When a message was due to leave: its ``not_before`` if later than its creation.

    A reminder written two weeks ahead is not two weeks late: time to reception counts from
    this moment, not from ``created_at``.
    """
    return sa.case(
        (Message.not_before > Message.created_at, Message.not_before), else_=Message.created_at
    )
