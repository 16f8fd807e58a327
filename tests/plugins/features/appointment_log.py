"""A test feature plugin: keeps every ``relais_appointment_changed`` call, with what the
database held for the appointment at that moment (the row must be flushed already).

A test may set :data:`hold` to keep a request inside the hook, its transaction open, until
the test releases it.
"""

import threading

import sqlalchemy as sa

from core import hookimpl
from core.db import db
from plugins.features.appointments import Appointment

kind = "feature"
calls: list[tuple] = []  # (clinic slug, change, appointment id, status, status in the database)
hold: threading.Event | None = None  # set: "created" waits for it (at most 10 s)


@hookimpl
def relais_appointment_changed(tenant, appointment, change):
    with db.session.no_autoflush:
        stored = db.session.scalar(
            sa.select(Appointment.status).where(Appointment.id == appointment.id)
        )
    calls.append((tenant.slug, change, appointment.id, appointment.status.value, stored))
    if hold is not None and change == "created":
        hold.wait(10)
