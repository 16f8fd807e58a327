"""The appointments table: who sees whom, when, where, why, and what became of it.

Times are aware UTC datetimes; pages show them in the clinic's time zone. The reason is
health data: stored encrypted, never logged.
"""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.plugin_api import (
    EncryptedText,
    Patient,
    TenantOwned,
    User,
    UTCDateTime,
    created_column,
    db,
    id_column,
)

MAX_EXTERNAL_ID = 100
MAX_TYPE = 40
MAX_LOCATION = 300
MAX_REASON = 2000


class AppointmentStatus(StrEnum):
    BOOKED = "booked"  # made by the clinic (or its practice software)
    CONFIRMED = "confirmed"  # the patient said they will come
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"  # the patient did not come
    DONE = "done"


def _values(enum) -> list[str]:
    return [m.value for m in enum]


class Appointment(TenantOwned, db.Model):
    """An appointment of a patient with a practitioner (a staff member) of the clinic."""

    __tablename__ = "appointments"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tenant_id", "practitioner_id"], ["users.tenant_id", "users.id"]),
        # The practice software's own id: pushing it twice updates, never duplicates.
        sa.UniqueConstraint("tenant_id", "external_id"),
        # The agenda (a practitioner's week) and the overlap check.
        # Each holds the id: wider than the key references are checked by (appointments_0003).
        sa.Index("ix_appointments_practitioner", "tenant_id", "practitioner_id", "starts_at", "id"),
        sa.Index("ix_appointments_starts_at", "tenant_id", "starts_at", "id"),
        sa.Index("ix_appointments_patient", "tenant_id", "patient_id", "starts_at", "id"),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    id: Mapped[uuid.UUID] = id_column()
    external_id: Mapped[str | None] = mapped_column(sa.String(MAX_EXTERNAL_ID))
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    practitioner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[AppointmentStatus] = mapped_column(
        sa.Enum(AppointmentStatus, native_enum=False, length=20, values_callable=_values),
        default=AppointmentStatus.BOOKED,
    )
    type: Mapped[str] = mapped_column(sa.String(MAX_TYPE))  # e.g. "consultation", lower case
    location: Mapped[str | None] = mapped_column(sa.String(MAX_LOCATION))
    reason: Mapped[str | None] = mapped_column(EncryptedText)  # health data
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Read-only: ids are set directly, and tenant_id is shared by both foreign keys.
    patient: Mapped[Patient] = relationship(
        primaryjoin="and_(foreign(Appointment.tenant_id) == Patient.tenant_id, "
        "foreign(Appointment.patient_id) == Patient.id)",
        viewonly=True,
        lazy="selectin",
    )
    practitioner: Mapped[User] = relationship(
        primaryjoin="and_(foreign(Appointment.tenant_id) == User.tenant_id, "
        "foreign(Appointment.practitioner_id) == User.id)",
        viewonly=True,
        lazy="selectin",
    )

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    @property
    def active(self) -> bool:
        """Not cancelled: it holds its practitioner's time."""
        return self.status != AppointmentStatus.CANCELLED
