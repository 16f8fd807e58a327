"""A clinic's endpoint: registering it (Relais makes the secret, shown once), rotating the
secret (the previous one keeps signing for a day), removing it; and reading the delivery log.
The settings page and the API both call these."""

from datetime import timedelta

import sqlalchemy as sa

from core.plugin_api import db, plugin_setting, record_audit, utcnow
from plugins.features.callbacks import addresses
from plugins.features.callbacks.delivery import PLUGIN, endpoint, new_secret
from plugins.features.callbacks.models import Attempt, Endpoint, Event

OVERLAP = timedelta(hours=24)  # how long the previous secret still signs after a rotation


def save_url(tenant, value) -> str | None:
    """Register the clinic's endpoint, or change its address.

    :return: the new secret when the endpoint is new (to show once), else None.
    :raises ValidationError: on ``url``; nothing is stored.
    """
    url = addresses.parse_url(value, bool(plugin_setting(tenant, PLUGIN, "allow_private")))
    current = endpoint()
    if current is not None:
        current.url = url
        record_audit("callbacks.endpoint.update", current.id)
        return None
    secret = new_secret()
    created = Endpoint(tenant_id=tenant.id, url=url, secret=secret)
    db.session.add(created)
    db.session.flush()
    record_audit("callbacks.endpoint.create", created.id)
    return secret


def rotate() -> str | None:
    """A new secret for the endpoint (returned, to show once); the previous one signs too for
    :data:`OVERLAP`. None when there is no endpoint."""
    current = endpoint()
    if current is None:
        return None
    current.previous_secret, current.previous_until = current.secret, utcnow() + OVERLAP
    current.secret = new_secret()
    record_audit("callbacks.secret.rotate", current.id)
    return current.secret


def remove() -> None:
    """Remove the endpoint: events still waiting are given up when their turn comes."""
    current = endpoint()
    if current is not None:
        record_audit("callbacks.endpoint.delete", current.id)
        db.session.execute(sa.delete(Endpoint))


def delivery_log(limit: int, offset: int = 0) -> tuple[list[tuple[Attempt, Event]], int]:
    """The clinic's attempts with their events, latest first, and how many there are in all.

    The read is audited (the events name messages and patients); the caller commits."""
    rows = db.session.execute(
        sa.select(Attempt, Event)
        .join(Event, sa.and_(Event.tenant_id == Attempt.tenant_id, Event.id == Attempt.event_id))
        .order_by(Attempt.at.desc(), Attempt.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Attempt)) or 0
    record_audit("callbacks.log.read", detail=f"{len(rows)} attempts")
    return [tuple(r) for r in rows], total
