"""The callbacks' tables: each clinic's endpoint (its secrets encrypted), the events waiting
for it or done, and every attempt's answer (the delivery log).

An event's ``payload`` is the JSON body sent, fixed when the event is written: ids, a status,
times, a purpose, a channel, the API client's reference; never a message's text or health data.
"""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.plugin_api import (
    EncryptedText,
    TenantOwned,
    UTCDateTime,
    created_column,
    db,
    id_column,
)

MAX_URL = 500

WAITING, DELIVERED, GIVEN_UP = "waiting", "delivered", "given_up"


class Endpoint(TenantOwned, db.Model):
    """A clinic's callback endpoint: one per clinic."""

    __tablename__ = "callback_endpoints"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_callback_endpoints_tenant_id"),)

    id: Mapped[uuid.UUID] = id_column()
    url: Mapped[str] = mapped_column(sa.String(MAX_URL))
    secret: Mapped[str] = mapped_column(EncryptedText)
    # During a rotation the previous secret signs too, until ``previous_until``.
    previous_secret: Mapped[str | None] = mapped_column(EncryptedText)
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()


class Event(TenantOwned, db.Model):
    """A status change or a reply to tell the clinic's endpoint, in order per ``subject_id``
    (the message, or the reply)."""

    __tablename__ = "callback_events"
    __table_args__ = (
        sa.Index("ix_callback_events_due", "state", "next_attempt_at"),
        sa.Index("ix_callback_events_subject", "tenant_id", "subject_id", "at", "id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    subject_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    kind: Mapped[str] = mapped_column(sa.String(30))  # "message.status" or "reply.received"
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it happened
    payload: Mapped[dict] = mapped_column(sa.JSON)
    state: Mapped[str] = mapped_column(sa.String(10), default=WAITING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # queued for a job
    created_at: Mapped[datetime] = created_column()


class Attempt(TenantOwned, db.Model):
    """One POST of an event and what the endpoint answered."""

    __tablename__ = "callback_attempts"
    __table_args__ = (
        sa.Index("ix_callback_attempts_recent", "tenant_id", "at"),
        sa.Index("ix_callback_attempts_event", "tenant_id", "event_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    at: Mapped[datetime] = created_column()
    url: Mapped[str] = mapped_column(sa.String(MAX_URL))
    status_code: Mapped[int | None] = mapped_column()
    latency_ms: Mapped[int] = mapped_column()
    error: Mapped[str | None] = mapped_column(sa.String(200))
