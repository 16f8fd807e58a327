"""The clinic's tables: staff, patients, consents, settings, API keys and the audit trail.

Every tenant-owned table has ``tenant_id`` leading its primary key and its unique
constraints, and foreign keys between them include it, so the schema can be distributed by
tenant (Citus) without change.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from core.auth import Credentials
from core.crypto import EncryptedJSON
from core.db import UTCDateTime, created_column, db, id_column
from core.phones import line_type
from tenants.scoping import TenantOwned


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


class SecretaryPractitioner(TenantOwned, db.Model):
    """A practitioner a secretary works for: the secretary handles that practitioner's
    patients' requests (see :func:`core.clinic.staff.works_for`). A secretary with no row
    works for every practitioner of the clinic."""

    __tablename__ = "secretary_practitioners"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "secretary_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "practitioner_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
    )

    secretary_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    practitioner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)


class StaffInvitation(TenantOwned, db.Model):
    """The operator's invitation to a clinic's first admin: one per clinic, a new one
    replacing the link of the one before (see :mod:`core.delivery.invitations`)."""

    __tablename__ = "staff_invitations"

    email: Mapped[str] = mapped_column(sa.String(254))
    name: Mapped[str] = mapped_column(sa.String(200))
    nonce_digest: Mapped[str] = mapped_column(sa.String(64))  # SHA-256 of the link's nonce
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # the e-mail that carried it
    # The invited person's mobile (E.164), given at sign-up: their account starts with it,
    # still to be proved by a code at first login.
    phone: Mapped[str | None] = mapped_column(sa.String(20))


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
        # The list's whole order; wider than the primary key, so that the key is what
        # PostgreSQL's checks of references to a patient use (migration 0021).
        sa.Index("ix_patients_tenant_name", "tenant_id", "last_name", "first_name", "id"),
        # GIN on PostgreSQL (segments ask "tokens @> ARRAY[token]"); a plain one on SQLite.
        sa.Index("ix_patients_attribute_tokens", "attribute_tokens", postgresql_using="gin"),
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
    # "mobile" or "landline" (no SMS), set with the phone (:meth:`_phone_set`): a worker
    # reads it instead of parsing the number of every patient it sends to.
    phone_line: Mapped[str | None] = mapped_column(sa.String(8))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    birth_date: Mapped[date | None]
    # Administrative sex (FHIR ``gender``: female, male, other, unknown), or not given. Kept
    # in clear, as the birth date: identity data campaigns filter on in SQL, not health data.
    sex: Mapped[str | None] = mapped_column(sa.String(7))
    language: Mapped[str] = mapped_column(sa.String(10))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    # A channel the patient asked for (e.g. "voice" when they cannot read a screen): it goes
    # first in the plan of every message; None lets each feature choose.
    preferred_channel: Mapped[str | None] = mapped_column(sa.String(10))
    attributes: Mapped[list[str]] = mapped_column(EncryptedJSON, default=list)
    # The attributes' keyed tokens, kept in step on every save (core.clinic.attribute_index):
    # segments count and select patients by attribute without decrypting a row.
    attribute_tokens: Mapped[list[str]] = mapped_column(
        postgresql.ARRAY(sa.String(16)).with_variant(sa.JSON(), "sqlite"),
        default=list,
    )
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

    @validates("phone")
    def _phone_set(self, _key: str, phone: str | None) -> str | None:
        self.phone_line = line_type(phone)
        return phone


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
    # live: sends for real; test: nothing leaves (a simulator answers); team: only to staff.
    kind: Mapped[str] = mapped_column(sa.String(4), default="live", server_default="live")
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
