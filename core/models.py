"""Shared tenant-owned tables: staff, patients, API keys and the audit trail.

Every tenant-owned table has ``tenant_id`` leading its primary key and its unique
constraints, and foreign keys between them include it, so the schema can be distributed by
tenant (Citus) without change.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.crypto import EncryptedJSON, EncryptedText
from core.db import UTCDateTime, created_column, db, id_column
from tenants.scoping import TenantOwned


class Credentials(UserMixin):
    """Password, authenticator-app secret and lockout state of anyone who logs in."""

    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText)
    totp_enrolled: Mapped[bool] = mapped_column(default=False)
    totp_last_counter: Mapped[int | None] = mapped_column(sa.BigInteger)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = created_column()

    @property
    def is_active(self) -> bool:
        return self.active


class Role(StrEnum):
    ADMIN = "admin"
    PRACTITIONER = "practitioner"
    SECRETARY = "secretary"


class User(TenantOwned, Credentials, db.Model):
    """A clinic's staff member."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "email"),)

    id: Mapped[uuid.UUID] = id_column()
    email: Mapped[str] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(20))  # E.164, where codes go
    # Set once the holder proved the phone is theirs with a code (a new account's first step).
    phone_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    role: Mapped[Role] = mapped_column(
        sa.Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )


class PatientAttribute(StrEnum):
    """Tags that matter to messaging and campaigns (health data: stored encrypted)."""

    LONG_TERM_CONDITION = "long_term_condition"
    CHRONIC_DISEASE = "chronic_disease"
    PREGNANCY_FOLLOW_UP = "pregnancy_follow_up"
    NEEDS_SUPPORT = "needs_support"


patient_practitioners = sa.Table(
    "patient_practitioners",
    db.metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("patient_id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.ForeignKeyConstraint(
        ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
    ),
    sa.ForeignKeyConstraint(
        ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
    ),
)


class Patient(TenantOwned, db.Model):
    __tablename__ = "patients"
    __table_args__ = (
        sa.Index("ix_patients_tenant_last_name", "tenant_id", "last_name"),
        # One account per verified phone number in a clinic: logging in by code finds it.
        sa.Index(
            "ux_patients_account_phone",
            "tenant_id",
            "phone",
            unique=True,
            postgresql_where=sa.text("signed_up_at IS NOT NULL"),
            sqlite_where=sa.text("signed_up_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    phone: Mapped[str | None] = mapped_column(sa.String(20))  # E.164
    email: Mapped[str | None] = mapped_column(sa.String(254))
    birth_date: Mapped[date | None]
    language: Mapped[str] = mapped_column(sa.String(10))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    # A channel the patient asked for (e.g. "voice" when they cannot read a screen): it goes
    # first in the plan of every message; None lets each feature choose.
    preferred_channel: Mapped[str | None] = mapped_column(sa.String(10))
    attributes: Mapped[list[str]] = mapped_column(EncryptedJSON, default=list)
    # An account: the patient signed up with this phone, verified by a code, and logs in with it.
    signed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Created by a sign-up that matched no record of the clinic: for staff to check.
    review_needed: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()

    practitioners: Mapped[list[User]] = relationship(
        secondary=patient_practitioners,
        primaryjoin="and_(Patient.tenant_id == patient_practitioners.c.tenant_id, "
        "Patient.id == patient_practitioners.c.patient_id)",
        secondaryjoin="and_(User.tenant_id == patient_practitioners.c.tenant_id, "
        "User.id == patient_practitioners.c.user_id)",
        order_by="User.name",
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class ConsentAction(StrEnum):
    GIVEN = "given"
    CONFIRMED = "confirmed"  # a double opt-in's second step (Germany)
    WITHDRAWN = "withdrawn"  # an opt-out: STOP, a link, staff noting it


class ConsentMethod(StrEnum):
    FORM = "form"  # a form the patient filled in (the clinic's page, a signed form)
    PAPER = "paper"  # a paper form, noted by staff
    SMS_REPLY = "sms_reply"
    LINK = "link"
    API = "api"  # recorded by the clinic's practice software


class Consent(TenantOwned, db.Model):
    """One step of a patient's consent to non-essential messages on a channel: given,
    confirmed or withdrawn, how, by whom, when. Append-only: the latest step is the state,
    the rows before it are the proof (see :mod:`core.consent`)."""

    __tablename__ = "consents"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
        sa.Index("ix_consents_patient", "tenant_id", "patient_id", "channel", "at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    channel: Mapped[str] = mapped_column(sa.String(10))
    purpose: Mapped[str] = mapped_column(sa.String(20))  # "non_essential"
    action: Mapped[ConsentAction] = mapped_column(
        sa.Enum(
            ConsentAction,
            native_enum=False,
            length=10,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    method: Mapped[ConsentMethod] = mapped_column(
        sa.Enum(
            ConsentMethod,
            native_enum=False,
            length=10,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    actor: Mapped[str] = mapped_column(sa.String(80))  # "patient", "user:<id>", "api_key:<id>"
    at: Mapped[datetime] = created_column()


class ClinicSettings(TenantOwned, db.Model):
    """A plugin's settings chosen by a clinic for itself (those its plugin declares with
    ``clinic=True``), over its country's; encrypted whole."""

    __tablename__ = "clinic_settings"

    plugin: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    sealed: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = created_column()


class AccessLinkUse(TenantOwned, db.Model):
    """A patient's access link that was used: each link opens one session, once
    (see :mod:`core.web.patient`)."""

    __tablename__ = "access_link_uses"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
    )

    nonce: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    used_at: Mapped[datetime] = created_column()


class ApiKey(TenantOwned, db.Model):
    """A clinic's key for the JSON API; only its SHA-256 digest is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "digest"),)

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(sa.String(100))
    digest: Mapped[str] = mapped_column(sa.String(64))
    hint: Mapped[str] = mapped_column(sa.String(12))  # the first characters, to recognise it
    created_at: Mapped[datetime] = created_column()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(TenantOwned, db.Model):
    """Who read or changed what, and when. Append-only; purged by time in batches."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_at", "at"),)

    id: Mapped[uuid.UUID] = id_column()
    at: Mapped[datetime] = created_column()
    actor: Mapped[str] = mapped_column(sa.String(80))  # "user:<id>" or "api_key:<id>"
    action: Mapped[str] = mapped_column(sa.String(40))  # e.g. "patient.read"
    object_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    detail: Mapped[str | None] = mapped_column(sa.String(200))  # never health data or secrets


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
        sa.Index("ix_messages_tenant_created", "tenant_id", "created_at"),
        # The sweeper's look for sent messages awaiting a device's acknowledgement (push).
        sa.Index("ix_messages_sent", "status", "provider", "sent_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    patient_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Where it goes when no patient record holds the address (a sign-up code, a staff phone).
    address: Mapped[str | None] = mapped_column(sa.String(254))
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
    verdict_reason: Mapped[str | None] = mapped_column(sa.String(200))
    verdict_rule: Mapped[str | None] = mapped_column(sa.String(40))  # e.g. "quiet_hours"
    verdict_plugin: Mapped[str | None] = mapped_column(sa.String(100))  # e.g. "fr"
    verdict_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a deferral's date
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
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
    """A status change of a message, timestamped (never its content)."""

    __tablename__ = "message_events"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "message_id"], ["messages.tenant_id", "messages.id"], ondelete="CASCADE"
        ),
        sa.Index("ix_message_events_message", "tenant_id", "message_id"),
        sa.Index("ix_message_events_at", "at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    message_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    at: Mapped[datetime] = created_column()
    status: Mapped[str] = mapped_column(sa.String(20))
    detail: Mapped[str | None] = mapped_column(sa.String(200))


class Attempt(TenantOwned, db.Model):
    """One call to a provider for one message: which, when, how long, what came back."""

    __tablename__ = "attempts"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "message_id"], ["messages.tenant_id", "messages.id"], ondelete="CASCADE"
        ),
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

    id: Mapped[uuid.UUID] = id_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(sa.String(10))
    provider: Mapped[str] = mapped_column(sa.String(50))
    provider_ref: Mapped[str | None] = mapped_column(sa.String(100))
    sender: Mapped[str] = mapped_column(sa.String(32))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    text: Mapped[str] = mapped_column(EncryptedText)
    handled_by: Mapped[str | None] = mapped_column(sa.String(200))
