"""The SQLAlchemy handle shared by the core, tenants and plugins, and common column types."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from uuid6 import uuid7

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


def new_id() -> uuid.UUID:
    """A time-ordered UUIDv7: opaque outside, friendly to B-tree indexes inside."""
    return uuid7()


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
