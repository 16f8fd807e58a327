"""Clinic rules: a test feature whose reminder settings each clinic may choose.

Two of its settings are declared with ``clinic=True``; its sender name only the operator sets.
"""

from core import hookimpl
from core.clinic.settings import Setting, yes_no

kind = "feature"


def hours(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 72:
        raise ValueError("from 1 to 72 hours")
    return int(text)


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "reminder_hours",
            "Reminder lead time",
            default=24,
            parse=hours,
            help="Hours before the appointment.",
            clinic=True,
        ),
        Setting("weekends", "Send on weekends", default=False, parse=yes_no, clinic=True),
        Setting("sender", "Sender name", default="Relais"),
    ]
