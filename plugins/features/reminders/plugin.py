"""Reminders: up to four reminders per appointment, by the patient's best channel."""

from plugins.features.reminders.models import Reminder

kind = "feature"

__all__ = ["Reminder"]
