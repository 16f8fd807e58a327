"""Messaging's tables: conversations between a patient and a practitioner, their messages
(bodies encrypted), attachments (encrypted), blocks and each practitioner's inbox state.

A conversation keeps what the inbox lists (its last message's time, whether the staff have
read it, whether it waits for them) so that a page of the inbox is one query on one index.
"""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.plugin_api import (
    EncryptedBytes,
    EncryptedText,
    TenantOwned,
    UTCDateTime,
    created_column,
    db,
    id_column,
)

MAX_BODY = 5000
MAX_FILENAME = 200
MAX_AUTO_ANSWER = 1000
MAX_TITLE = 100


class Author(StrEnum):
    PATIENT = "patient"
    STAFF = "staff"
    AUTO = "auto"  # the inbox's automatic answer while it is closed


class ReplyMode(StrEnum):
    """Whether the patient may write in a conversation (staff choose it per message)."""

    NONE = "none"  # a message to read, no reply
    ONCE = "once"  # one reply, then it waits for the staff again
    UNTIL_CLOSED = "until_closed"  # replies until the conversation is marked handled


def _values(enum) -> list[str]:
    return [m.value for m in enum]


def _enum(enum, length: int = 20) -> sa.Enum:
    return sa.Enum(enum, native_enum=False, length=length, values_callable=_values)


def _patient_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
    )


def _practitioner_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "practitioner_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
    )


class Conversation(TenantOwned, db.Model):
    """A thread between a patient and one practitioner (a secretary may answer for them)."""

    __tablename__ = "messaging_conversations"
    __table_args__ = (
        _patient_fk(),
        _practitioner_fk(),
        # The inbox, newest first (keyset on last_message_at, id), whole or narrowed.
        sa.Index("ix_messaging_conversations_inbox", "tenant_id", "last_message_at", "id"),
        sa.Index(
            "ix_messaging_conversations_practitioner",
            "tenant_id",
            "practitioner_id",
            "last_message_at",
            "id",
        ),
        sa.Index(
            "ix_messaging_conversations_patient", "tenant_id", "patient_id", "last_message_at", "id"
        ),
        sa.Index(
            "ix_messaging_conversations_awaiting",
            "tenant_id",
            "last_message_at",
            "id",
            postgresql_where=sa.text("awaiting_staff"),
            sqlite_where=sa.text("awaiting_staff"),
        ),
        sa.Index(
            "ux_messaging_conversations_appointment",
            "tenant_id",
            "appointment_id",
            unique=True,
            postgresql_where=sa.text("appointment_id IS NOT NULL"),
            sqlite_where=sa.text("appointment_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_messaging_conversations_unread",
            "tenant_id",
            "practitioner_id",
            postgresql_where=sa.text("unread_by_staff"),
            sqlite_where=sa.text("unread_by_staff"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    practitioner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    started_by: Mapped[Author] = mapped_column(_enum(Author))
    reply_mode: Mapped[ReplyMode] = mapped_column(_enum(ReplyMode))
    created_at: Mapped[datetime] = created_column()
    last_message_at: Mapped[datetime] = created_column()
    # The patient wrote and nobody marked it handled since: the inbox's "unhandled".
    awaiting_staff: Mapped[bool] = mapped_column(default=False)
    # A patient's message no staff member has opened yet: the inbox's "unread".
    unread_by_staff: Mapped[bool] = mapped_column(default=False)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last staff reply
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # marked handled
    closed_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # The appointment whose automatic follow-up message started it (one per appointment).
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # The appointment staff started it from (the agenda's "Write to the patient"): its
    # date, time and reason fill the templates' variables. Several may name one.
    about_appointment_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class ThreadMessage(TenantOwned, db.Model):
    """One message of a conversation; its body is health data, stored encrypted."""

    __tablename__ = "messaging_messages"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["messaging_conversations.tenant_id", "messaging_conversations.id"],
            ondelete="CASCADE",
        ),
        # Holds the id: wider than the key attachments are checked by (messaging_0008).
        sa.Index(
            "ix_messaging_messages_conversation", "tenant_id", "conversation_id", "created_at", "id"
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    conversation_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    author: Mapped[Author] = mapped_column(_enum(Author))
    author_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # staff who wrote it
    body: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = created_column()
    # When the other side first read it: the patient reading a staff message is the ✓✓
    # staff see; staff reading a patient's message is never shown to the patient.
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A staff message scheduled for later: the patient sees it (and is told) from then on.
    visible_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Deleted by staff: the body is emptied and the files removed; the row stays, so that
    # the thread shows where a message was (the audit log says who deleted it, and when).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Attachment(TenantOwned, db.Model):
    """A file a message carries (PDF, JPEG, PNG), its name and content encrypted."""

    __tablename__ = "messaging_attachments"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "message_id"],
            ["messaging_messages.tenant_id", "messaging_messages.id"],
            ondelete="CASCADE",
        ),
        sa.Index("ix_messaging_attachments_message", "tenant_id", "message_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    message_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    filename: Mapped[str] = mapped_column(EncryptedText)
    mime_type: Mapped[str] = mapped_column(sa.String(40))
    size: Mapped[int] = mapped_column(sa.Integer)
    data: Mapped[bytes] = mapped_column(EncryptedBytes, deferred=True)


class Block(TenantOwned, db.Model):
    """A patient a practitioner no longer takes messages from (online booking apart)."""

    __tablename__ = "messaging_blocks"
    __table_args__ = (_patient_fk(), _practitioner_fk())

    practitioner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    blocked_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    created_at: Mapped[datetime] = created_column()


class Allowed(TenantOwned, db.Model):
    """A patient a practitioner lets write first, whatever the clinic's ``first_writers``."""

    __tablename__ = "messaging_allowed"
    __table_args__ = (_patient_fk(), _practitioner_fk())

    practitioner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    allowed_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    created_at: Mapped[datetime] = created_column()


class Inbox(TenantOwned, db.Model):
    """A practitioner's inbox closed (holidays), with the answer patients get meanwhile.
    No row, or ``closed_at`` None: open."""

    __tablename__ = "messaging_inboxes"
    __table_args__ = (_practitioner_fk(),)

    practitioner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_answer: Mapped[str | None] = mapped_column(sa.Text)


class Template(TenantOwned, db.Model):
    """A staff member's saved answer, with variables filled in when used; starred ones
    come first."""

    __tablename__ = "messaging_templates"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "owner_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
        sa.Index("ix_messaging_templates_owner", "tenant_id", "owner_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    owner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    title: Mapped[str] = mapped_column(sa.String(MAX_TITLE))
    body: Mapped[str] = mapped_column(sa.Text)
    starred: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = created_column()


class Digest(TenantOwned, db.Model):
    """When a practitioner last got the e-mail saying how many requests wait for them (at
    most one a week: see :mod:`.digest`)."""

    __tablename__ = "messaging_digests"
    __table_args__ = (_practitioner_fk(),)

    practitioner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
