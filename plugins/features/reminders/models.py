"""Which outbox messages are an appointment's reminders (the messages themselves live in the
outbox, waiting for their ``not_before``: no job per reminder waits in Redis)."""

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.plugin_api import (
    TenantOwned,
    db,
)


class Reminder(TenantOwned, db.Model):
    """One reminder of an appointment: its outbox message and how long before the start."""

    __tablename__ = "reminders"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "message_id"], ["messages.tenant_id", "messages.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "appointment_id"],
            ["appointments.tenant_id", "appointments.id"],
            ondelete="CASCADE",
        ),
        sa.Index("ix_reminders_appointment", "tenant_id", "appointment_id"),
    )

    message_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    appointment_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    minutes_before: Mapped[int]
