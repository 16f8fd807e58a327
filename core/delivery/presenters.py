"""What a message looks like from outside: its status, history and attempts (no content)."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core import validation as check
from core.db import db
from core.delivery.models import Attempt, Message, MessageEvent
from core.errors import NotFound


def find_message(message_id: uuid.UUID) -> Message:
    message = db.session.scalar(sa.select(Message).where(Message.id == message_id))
    if message is None:
        raise NotFound(_("No such message."))
    return message


def to_json(message: Message) -> dict[str, Any]:
    events = db.session.scalars(
        sa.select(MessageEvent)
        .where(MessageEvent.message_id == message.id)
        .order_by(MessageEvent.at, MessageEvent.id)
    )
    attempts = db.session.scalars(
        sa.select(Attempt).where(Attempt.message_id == message.id).order_by(Attempt.at, Attempt.id)
    )
    return {
        "id": str(message.id),
        "patient_id": str(message.patient_id) if message.patient_id else None,
        "purpose": message.purpose,
        "status": str(message.status),
        "channels": message.channels,
        "channel": message.channel,
        "provider": message.provider,
        "key_kind": message.key_kind,  # the kind of API key that wrote it (null: none did)
        "verdict": verdict_json(message),
        "not_before": _iso(message.not_before),
        "expires_at": _iso(message.expires_at),
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
        "delivered_at": _iso(message.delivered_at),
        "events": [{"at": _iso(e.at), "status": e.status, "detail": e.detail} for e in events],
        "attempts": [
            {
                "at": _iso(a.at),
                "channel": a.channel,
                "provider": a.provider,
                "outcome": a.outcome,
                "latency_ms": a.latency_ms,
                "error": a.error,
            }
            for a in attempts
        ],
    }


def verdict_json(message: Message) -> dict[str, Any]:
    """What the country's rules said of a message, and which plugin and rule said it."""
    return {
        "action": message.verdict,
        "reason": message.verdict_reason,
        "rule": message.verdict_rule,
        "plugin": message.verdict_plugin,
        "until": _iso(message.verdict_until),
    }


def parse_time(value: Any, field: str) -> datetime | None:
    """An ISO 8601 time with its offset (``2026-11-23T09:00:00+01:00``), or None."""
    return check.moment(value, field)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
