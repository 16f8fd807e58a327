"""The one-time codes sent to verify a phone: only a keyed hash of each code is kept."""

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


class Challenge(TenantOwned, db.Model):
    """A code sent to a phone number, to verify it for a patient or a staff member.

    The number is kept encrypted, and as a keyed hash (``phone_digest``) that the per-number
    limits count by; the code only as a keyed hash bound to this challenge. A challenge is
    over when used, voided (too many wrong tries) or past ``expires_at``. A patient's code
    used on a number without an account proves it for one sign-up: ``spent_at`` marks it
    spent.
    """

    __tablename__ = "otp_challenges"
    __table_args__ = (
        sa.Index("ix_otp_challenges_phone", "tenant_id", "phone_digest", "created_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    purpose: Mapped[str] = mapped_column(sa.String(10))  # "patient" or "staff"
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # the staff member verified
    phone_digest: Mapped[str] = mapped_column(sa.String(64))
    phone: Mapped[str] = mapped_column(EncryptedText)  # E.164, what a verified code proves
    code_digest: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(sa.String(10))  # "sms" or "voice"
    message_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    wrong_tries: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = created_column()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
