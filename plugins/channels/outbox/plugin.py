"""Outbox (development): messages land in a table, shown on the clinic's Outbox page."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from flask import Blueprint, render_template
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column

from core.plugin_api import (
    ACCEPTED,
    MenuItem,
    Outgoing,
    Provider,
    Result,
    Setting,
    TenantOwned,
    UTCDateTime,
    created_column,
    db,
    hookimpl,
    id_column,
    insert_many,
    new_id,
    utcnow,
    yes_no,
)

kind = "channel"
name = _l("Outbox (development)")
description = _l("Outbox (development): messages land in a table, shown on the Outbox page.")


class OutboxDelivery(TenantOwned, db.Model):
    """A message as the patient would have received it; one per message and channel."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "message_id", "channel"),)

    id: Mapped[uuid.UUID] = id_column()
    message_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    channel: Mapped[str] = mapped_column(sa.String(10))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str | None] = mapped_column(sa.String(200))
    text: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime] = created_column()
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxProvider(Provider):
    """Writes each message once into ``outbox_deliveries`` (idempotent by message id). The
    table is the recipient's inbox: a message it takes is delivered, unless the
    ``report_delivery`` setting is off (the message then stays sent, as with a provider
    whose receipts never come, which is how tests drive receipts by hand)."""

    batch_size = 500

    @property
    def delivered_on_accept(self) -> bool:
        return self.settings.get("report_delivery", True)

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        at = utcnow()
        rows = [
            {
                "tenant_id": o.tenant_id,
                "id": new_id(),
                "message_id": o.message_id,
                "channel": o.channel,
                "recipient": o.to,
                "subject": o.subject,
                "text": o.text,
                "at": at,
                "read_at": None,
            }
            for o in batch
        ]
        # One statement for the batch (a message taken before, by a retry, is left as it is).
        insert_many(OutboxDelivery.__table__, rows, skip_conflicts=True)
        return [
            Result(o.message_id, ACCEPTED, provider_ref=f"outbox-{o.message_id}") for o in batch
        ]


class OutboxSms(OutboxProvider):
    name, channel = "outbox_sms", "sms"


class OutboxEmail(OutboxProvider):
    name, channel = "outbox_email", "email"


class OutboxVoice(OutboxProvider):
    name, channel = "outbox_voice", "voice"


bp = Blueprint("outbox", __name__, template_folder="templates")


@bp.get("/outbox")
def index():
    rows = db.session.scalars(
        sa.select(OutboxDelivery).order_by(OutboxDelivery.at.desc()).limit(200)
    ).all()
    return render_template("outbox/index.html", deliveries=rows)


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "report_delivery",
            _l("Report delivery"),
            default=True,
            parse=yes_no,
            help=_l("Messages the outbox takes are delivered at once (no: they stay sent)."),
        )
    ]


@hookimpl
def relais_register_channels():
    return [OutboxSms, OutboxEmail, OutboxVoice]


@hookimpl
def relais_register_blueprints():
    return [bp]


@hookimpl
def relais_menu_items():
    return [MenuItem(label=_l("Outbox"), endpoint="outbox.index")]
