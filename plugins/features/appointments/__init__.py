"""Appointments: the public module other features use (the reminders feature does).

- :class:`Appointment` and :class:`AppointmentStatus`, the table and its statuses;
- :mod:`.service`'s domain functions: :func:`create`, :func:`upsert`, :func:`update`,
  :func:`move`, :func:`cancel`, :func:`set_status`, :func:`find`, :func:`list_between`
  (audited: a person's search), :func:`between` (the query alone, for jobs and sweepers),
  :func:`declared_types` (the clinic's appointment types);
- each change calls the hook ``relais_appointment_changed(tenant, appointment, change)``
  in its transaction, with ``change`` one of :data:`CHANGES`.
"""

from plugins.features.appointments.models import Appointment, AppointmentStatus
from plugins.features.appointments.service import (
    CHANGES,
    between,
    cancel,
    create,
    declared_types,
    find,
    list_between,
    move,
    set_status,
    to_json,
    update,
    upsert,
)

__all__ = [
    "CHANGES",
    "Appointment",
    "AppointmentStatus",
    "between",
    "cancel",
    "create",
    "declared_types",
    "find",
    "list_between",
    "move",
    "set_status",
    "to_json",
    "update",
    "upsert",
]
