"""The .ics invitation sent with an appointment's confirmation e-mail (RFC 5545, iTIP).

One UID per appointment, so a calendar updates its event when the appointment moves
(METHOD:REQUEST with a higher SEQUENCE) and removes it when it is cancelled (METHOD:CANCEL).
The SEQUENCE is the number of seconds between the booking and the last change: it grows
with every change without a column of its own.
"""

from datetime import UTC

from flask import current_app
from icalendar import Calendar, Event, vCalAddress, vText

from core.plugin_api import (
    utcnow,
)

PRODID = "-//Relais//Appointments//EN"
FILENAME = "rendez-vous.ics"
MIME_TYPE = "text/calendar"


def uid(appointment) -> str:
    return f"appointment-{appointment.id}@relais"


def sequence(appointment) -> int:
    changed = appointment.updated_at or appointment.created_at
    if changed is None or appointment.created_at is None:
        return 0
    return max(0, int((changed - appointment.created_at).total_seconds()))


def ics(tenant, appointment, summary: str, location: str | None, cancel: bool = False) -> bytes:
    """The calendar of one appointment: a request, or its cancellation."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancel else "REQUEST")
    event = Event()
    event.add("uid", uid(appointment))
    event.add("dtstamp", utcnow().astimezone(UTC))
    event.add("dtstart", appointment.starts_at.astimezone(UTC))
    event.add("dtend", appointment.ends_at.astimezone(UTC))
    event.add("sequence", sequence(appointment))
    event.add("summary", summary)
    if location:
        event.add("location", location)
    host = current_app.config.get("SERVER_NAME") or "relais.invalid"
    organizer = vCalAddress(f"mailto:no-reply@{tenant.slug}.{host}")
    organizer.params["cn"] = vText(tenant.name)
    event.add("organizer", organizer)
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    calendar.add_component(event)
    return calendar.to_ical()
