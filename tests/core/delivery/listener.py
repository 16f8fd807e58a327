"""A test feature listening to messages' status changes, with a push provider that waits for
an acknowledgement no device ever sends (so the sweeper's acknowledgement timeout applies).

What each ``relais_message_status_changed`` call received goes to :data:`changes`, with the
status the database holds for the message at that moment, read on a connection of its own:
only a committed change can be seen there.
"""

import sqlalchemy as sa

from core import hookimpl
from core.db import db
from core.delivery.models import Message
from core.delivery.providers import ACCEPTED, Provider, Result

kind = "feature"
changes: list[tuple[str, object, str, str | None]] = []  # (clinic, message id, status, stored)


class SilentPush(Provider):
    name, channel = "silent_push", "push"
    acknowledged = True  # counts as delivered only when a device says so: none ever does

    def try_send(self, batch, timeout):
        return [
            Result(o.message_id, ACCEPTED, provider_ref=f"silent-{o.message_id}") for o in batch
        ]


@hookimpl
def relais_register_channels():
    return [SilentPush]


@hookimpl
def relais_channel_address(tenant, patient, channel):
    return "a device" if channel == "push" else None


@hookimpl
def relais_message_status_changed(tenant, message_id, status, at):
    with db.engine.connect() as elsewhere:
        stored = elsewhere.scalar(
            sa.select(Message.status).where(
                Message.tenant_id == tenant.id, Message.id == message_id
            )
        )
    changes.append((tenant.slug, message_id, status, None if stored is None else str(stored)))


batches: list[list[tuple[object, str]]] = []  # relais_message_statuses_changed: one per call
replies: list[tuple[object, str, object]] = []  # relais_inbound_received: (reply, channel, by)
sweeps: list[object] = []  # relais_sweep: each pass's time


@hookimpl
def relais_message_statuses_changed(tenant, changes):
    batches.append([(c.message_id, c.status) for c in changes])


@hookimpl
def relais_inbound_received(tenant, reply_id, patient_id, channel, handled_by):
    replies.append((reply_id, channel, handled_by))


@hookimpl
def relais_sweep(now):
    sweeps.append(now)
