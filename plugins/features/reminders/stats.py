"""What reminders achieve, over a window of appointments: counted by the database.

- reminders sent by channel: the reminders' messages sent in the window, by the channel that
  carried them last (a fallback's channel);
- the confirmation rate: of the appointments in the window of which a reminder was sent, the
  share the patient confirmed;
- the no-show rate, with and without reminders: of the past appointments in the window marked
  done or no-show, the share of no-shows, apart for those a reminder was sent for.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from core.plugin_api import (
    Message,
    db,
    utcnow,
)
from plugins.features.appointments import Appointment, AppointmentStatus
from plugins.features.reminders.models import Reminder


@dataclass
class Stats:
    start: datetime
    end: datetime
    sent_by_channel: dict[str, int] = field(default_factory=dict)
    reminded: int = 0  # appointments with at least one reminder sent
    confirmed: int = 0  # of those, confirmed by the patient
    outcomes: dict[bool, dict[str, int]] = field(
        default_factory=lambda: {True: {"done": 0, "no_show": 0}, False: {"done": 0, "no_show": 0}}
    )

    @property
    def confirmation_rate(self) -> float | None:
        return self.confirmed / self.reminded if self.reminded else None

    def no_show_rate(self, reminded: bool) -> float | None:
        counts = self.outcomes[reminded]
        total = counts["done"] + counts["no_show"]
        return counts["no_show"] / total if total else None

    def to_json(self) -> dict:
        def rate(value):
            return None if value is None else round(value, 4)

        def outcome(reminded):
            counts = self.outcomes[reminded]
            return {**counts, "no_show_rate": rate(self.no_show_rate(reminded))}

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "sent_by_channel": self.sent_by_channel,
            "sent": sum(self.sent_by_channel.values()),
            "appointments_reminded": self.reminded,
            "appointments_confirmed": self.confirmed,
            "confirmation_rate": rate(self.confirmation_rate),
            "with_reminders": outcome(True),
            "without_reminders": outcome(False),
        }


def compute(start: datetime, end: datetime, now: datetime | None = None) -> Stats:
    """The current clinic's figures for ``[start, end)`` (aware times)."""
    now = now or utcnow()
    stats = Stats(start, end)
    # The channel that carried a message is its plan's entry at its index: counted per
    # (plan, index) in SQL, the few distinct plans read here (portable to SQLite).
    for plan, index, count in db.session.execute(
        sa.select(sa.cast(Message.channels, sa.Text), Message.channel_index, sa.func.count())
        .select_from(Reminder)
        .join(Message, Message.id == Reminder.message_id)
        .where(Message.sent_at >= start, Message.sent_at < end)
        .group_by(sa.cast(Message.channels, sa.Text), Message.channel_index)
    ):
        name = json.loads(plan)[index]
        stats.sent_by_channel[name] = stats.sent_by_channel.get(name, 0) + count
    stats.sent_by_channel = dict(sorted(stats.sent_by_channel.items()))

    reminded = (
        sa.exists()
        .where(
            Reminder.appointment_id == Appointment.id,
            Reminder.tenant_id == Appointment.tenant_id,
            Message.id == Reminder.message_id,
            Message.tenant_id == Reminder.tenant_id,
            Message.sent_at.is_not(None),
        )
        .correlate(Appointment)
    ).label("reminded")
    past = (Appointment.starts_at < now).label("past")
    rows = db.session.execute(
        sa.select(reminded, past, Appointment.status, sa.func.count())
        .where(Appointment.starts_at >= start, Appointment.starts_at < end)
        .group_by(reminded, past, Appointment.status)
    )
    for was_reminded, is_past, status, count in rows:
        if was_reminded:
            stats.reminded += count
            if status == AppointmentStatus.CONFIRMED:
                stats.confirmed += count
        if is_past and status in (AppointmentStatus.DONE, AppointmentStatus.NO_SHOW):
            stats.outcomes[bool(was_reminded)][status.value] += count
    return stats
