"""The outbox's tables: messages, their history, attempts, early receipts and replies.

Tenant-owned, with ``tenant_id`` leading every key (see core/clinic/models.py)."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.crypto import EncryptedJSON, EncryptedText
from core.db import UTCDateTime, created_column, db, id_column
from tenants.scoping import TenantOwned


class MessageStatus(StrEnum):
    SCHEDULED = "scheduled"  # waits for its not_before
    PENDING = "pending"  # due: waits for a worker (queued on Redis, or the sweeper will)
    SENDING = "sending"  # claimed by a worker, under lease
    SENT = "sent"  # accepted by a provider
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    EXPIRED = "expired"
    DENIED = "denied"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.EXPIRED,
        MessageStatus.DENIED,
        MessageStatus.CANCELLED,
    }
)


def _values(enum):
    return [m.value for m in enum]


class Message(TenantOwned, db.Model):
    """The outbox: one row per message to a patient, the source of truth for delivery.

    Redis only carries ids of due messages; the sweeper rebuilds whatever Redis loses.
    """

    __tablename__ = "messages"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
        sa.Index("ix_messages_due", "status", "next_attempt_at"),
        # Holds the id: wider than the key, never chosen over it (migration 0021).
        sa.Index("ix_messages_tenant_created", "tenant_id", "created_at", "id"),
        # The sweeper's look for sent messages awaiting a device's acknowledgement (push).
        sa.Index("ix_messages_sent", "status", "provider", "sent_at"),
        # A client's reference is unique per clinic and API key: a batch sent again creates
        # nothing twice (core.delivery.outbox.send_many).
        sa.Index(
            "ux_messages_reference",
            "tenant_id",
            "api_key_id",
            "reference",
            unique=True,
            postgresql_where=sa.text("reference IS NOT NULL"),
            sqlite_where=sa.text("reference IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    patient_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Where it goes when no patient record holds the address (a sign-up code, a staff phone).
    address: Mapped[str | None] = mapped_column(EncryptedText)  # a phone number: encrypted
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # the API key that wrote it
    reference: Mapped[str | None] = mapped_column(sa.String(100))  # the client's, per key
    key_kind: Mapped[str | None] = mapped_column(sa.String(4))  # that key's kind: live, test, team
    purpose: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[MessageStatus] = mapped_column(
        sa.Enum(MessageStatus, native_enum=False, length=20, values_callable=_values)
    )
    channels: Mapped[list[str]] = mapped_column(sa.JSON)  # the plan, in order of preference
    channel_index: Mapped[int] = mapped_column(default=0)
    provider: Mapped[str | None] = mapped_column(sa.String(50))
    provider_ref: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    exhausted: Mapped[list[str]] = mapped_column(sa.JSON, default=list)  # providers given up on
    tries: Mapped[int] = mapped_column(default=0)  # on the current provider
    content: Mapped[dict] = mapped_column(EncryptedJSON)  # rendered once: subject, text, html
    verdict: Mapped[str] = mapped_column(sa.String(10), default="allow")
    verdict_reason: Mapped[str | None] = mapped_column(sa.String(200))  # in English, for the API
    # The reasons as codes (core.i18n.Phrase), shown in each reader's language; None for a
    # plugin's plain-text reason and for messages judged before codes were stored.
    verdict_phrases: Mapped[list | None] = mapped_column(sa.JSON)
    verdict_rule: Mapped[str | None] = mapped_column(sa.String(40))  # e.g. "quiet_hours"
    verdict_plugin: Mapped[str | None] = mapped_column(sa.String(100))  # e.g. "fr"
    verdict_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a deferral's date
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # A call to this provider started then (written with the claim, or before a failover's
    # call) and its outcome is not known yet: the worker died during it, or it failed in a
    # way that may have reached the provider. The next claim asks the provider before
    # sending again; a known outcome clears it (core/delivery/dispatch.py).
    calling: Mapped[str | None] = mapped_column(sa.String(50))
    calling_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_column()
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def channel(self) -> str | None:
        plan = self.channels or []
        return plan[self.channel_index] if self.channel_index < len(plan) else None


class MessageEvent(TenantOwned, db.Model):
    """A status change of a message, timestamped (never its content).

    No foreign key to ``messages`` (append-only history, as :class:`Attempt`): a check per
    inserted row whose cached plan can turn into a scan of the outbox (migration 0009).
    core/delivery/lifecycle.py is the only writer, for messages it holds; the retention
    deletes the history with its message."""

    __tablename__ = "message_events"
    # No index on ``at``: no query reads the history by time (migration 0015).
    __table_args__ = (sa.Index("ix_message_events_message", "tenant_id", "message_id"),)

    id: Mapped[uuid.UUID] = id_column()
    message_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    at: Mapped[datetime] = created_column()
    status: Mapped[str] = mapped_column(sa.String(20))
    detail: Mapped[str | None] = mapped_column(sa.String(200))


class Attempt(TenantOwned, db.Model):
    """One call to a provider for one message: which, when, how long, what came back.

    No foreign key to ``messages`` (see :class:`MessageEvent`): the dispatch writes attempts
    only for messages it has claimed; the retention deletes them with their message."""

    __tablename__ = "attempts"
    __table_args__ = (
        sa.Index("ix_attempts_message", "tenant_id", "message_id"),
        sa.Index("ix_attempts_at", "at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    message_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    at: Mapped[datetime] = created_column()
    channel: Mapped[str] = mapped_column(sa.String(10))
    provider: Mapped[str] = mapped_column(sa.String(50))
    outcome: Mapped[str] = mapped_column(sa.String(12))  # accepted, temporary, permanent
    latency_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(sa.String(200))


class EarlyReceipt(TenantOwned, db.Model):
    """A delivery report that arrived before its send was recorded; applied when it is."""

    __tablename__ = "early_receipts"
    __table_args__ = (sa.Index("ix_early_receipts_ref", "tenant_id", "provider", "provider_ref"),)

    id: Mapped[uuid.UUID] = id_column()
    provider: Mapped[str] = mapped_column(sa.String(50))
    provider_ref: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(sa.String(200))


class InboundMessage(TenantOwned, db.Model):
    """A patient's reply; what a feature did with it, or nothing yet (kept for staff)."""

    __tablename__ = "inbound_messages"
    # A provider's reference is one reply: a retried or replayed webhook stores nothing more.
    __table_args__ = (
        sa.UniqueConstraint(
            "tenant_id", "provider", "provider_ref", name="uq_inbound_messages_provider_ref"
        ),
        # Before routing a reply to a clinic, the webhook looks for it in every clinic.
        sa.Index("ix_inbound_messages_ref", "provider", "provider_ref"),
    )

    id: Mapped[uuid.UUID] = id_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(sa.String(10))
    provider: Mapped[str] = mapped_column(sa.String(50))
    provider_ref: Mapped[str | None] = mapped_column(sa.String(100))
    sender: Mapped[str] = mapped_column(sa.String(32))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    text: Mapped[str] = mapped_column(EncryptedText)
    handled_by: Mapped[str | None] = mapped_column(sa.String(200))


class ProviderHealth(db.Model):
    """How much of its configured weight a provider carries now (``factor``, 0.1 to 1), and
    what the last measure saw; deployment-wide (a provider is one service for every clinic).
    The row named ``*`` only remembers when the last measure ran."""

    __tablename__ = "provider_health"

    provider: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    factor: Mapped[float] = mapped_column(sa.Float, default=1.0)
    share: Mapped[float | None] = mapped_column(sa.Float)  # of the window's messages slow or failed
    sample: Mapped[int] = mapped_column(default=0)  # messages in the window
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProviderHealthEvent(db.Model):
    """A shift of traffic away from a provider, or back to it, and why."""

    __tablename__ = "provider_health_events"
    __table_args__ = (sa.Index("ix_provider_health_events_at", "at"),)

    id: Mapped[uuid.UUID] = id_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    provider: Mapped[str] = mapped_column(sa.String(50))
    factor_from: Mapped[float] = mapped_column(sa.Float)
    factor_to: Mapped[float] = mapped_column(sa.Float)
    share: Mapped[float] = mapped_column(sa.Float)
    sample: Mapped[int]
