"""Patients' push subscriptions: one per browser or device that turned notifications on.

A subscription is what the browser's ``pushManager.subscribe()`` gives: the push service's
endpoint URL and the browser's keys for RFC 8291 encryption (``p256dh``, a P-256 public key;
``auth``, a 16-byte secret, stored encrypted). A patient without subscriptions receives no
push: their messages go by the next channel of the plan.
"""

import base64
import binascii
import json
import re
import uuid
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from flask_babel import gettext as _
from sqlalchemy.orm import Mapped, mapped_column

from core.plugin_api import (
    EncryptedText,
    NotFound,
    Patient,
    TenantOwned,
    UTCDateTime,
    ValidationError,
    created_column,
    db,
    id_column,
    utcnow,
)

MAX_ENDPOINT = 2000


class PushSubscription(TenantOwned, db.Model):
    """A browser's push subscription, for one patient (the last one who turned it on)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
        sa.UniqueConstraint("tenant_id", "endpoint"),
        sa.Index("ix_push_subscriptions_patient", "tenant_id", "patient_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    endpoint: Mapped[str] = mapped_column(sa.String(MAX_ENDPOINT))
    p256dh: Mapped[str] = mapped_column(sa.String(100))  # public: the browser's ECDH key
    auth: Mapped[str] = mapped_column(EncryptedText)  # secret: with it, payloads decrypt
    device: Mapped[str] = mapped_column(sa.String(60))
    created_at: Mapped[datetime] = created_column()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def subscribe(patient: Patient, data, user_agent: str, services: list[str]) -> PushSubscription:
    """Keep the subscription a browser gave (``PushSubscription.toJSON()``) for ``patient``.

    The same endpoint again (the device re-subscribed, or another patient of the clinic
    turned notifications on on a shared device) updates the row: a device receives for one
    patient only.

    :param services: the push services' origins the operator allows (see the plugin's
        ``push_services`` setting): no other address is ever called.
    :raises ValidationError: naming ``endpoint``, ``keys.p256dh`` or ``keys.auth``.
    """
    if not isinstance(data, dict):
        raise ValidationError(_("Send the subscription as a JSON object."), "endpoint")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not allowed(endpoint, services):
        raise ValidationError(
            _("This browser's push service is not one this clinic can use."), "endpoint"
        )
    keys = data.get("keys") if isinstance(data.get("keys"), dict) else {}
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    point = _b64(p256dh)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point or b"")
    except ValueError:
        raise ValidationError(
            _("The browser gave a key that is not valid."), "keys.p256dh"
        ) from None
    if len(_b64(auth) or b"") != 16:
        raise ValidationError(_("The browser gave a key that is not valid."), "keys.auth")
    row = db.session.scalar(
        sa.select(PushSubscription).where(PushSubscription.endpoint == endpoint)
    )
    if row is None:
        row = PushSubscription(endpoint=endpoint)
        db.session.add(row)
    row.patient_id, row.p256dh, row.auth = patient.id, p256dh, auth
    row.device = device_label(user_agent)
    db.session.flush()
    return row


def allowed(endpoint: str, services: list[str]) -> bool:
    """Whether ``endpoint`` is at one of the push services' origins (``https://host``,
    ``https://*.domain`` for its subdomains, or a full origin with a port)."""
    if len(endpoint) > MAX_ENDPOINT:
        return False
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return False
    if not parts.hostname or parts.username or parts.password:
        return False
    for service in services:
        wanted = urlsplit(service.strip())
        if wanted.scheme != parts.scheme or (wanted.port or None) != (port or None):
            continue
        host = (wanted.hostname or "").lower()
        if host == parts.hostname or (host.startswith("*.") and parts.hostname.endswith(host[1:])):
            return True
    return False


def subscribed_sql() -> sa.ColumnElement[bool]:
    """The condition, on :class:`Patient`, "has turned notifications on on a device"."""
    return sa.exists().where(
        PushSubscription.tenant_id == Patient.tenant_id,
        PushSubscription.patient_id == Patient.id,
    )


def of_patient(patient: Patient) -> list[PushSubscription]:
    """A patient's subscriptions, newest first."""
    return list(
        db.session.scalars(
            sa.select(PushSubscription)
            .where(PushSubscription.patient_id == patient.id)
            .order_by(PushSubscription.created_at.desc())
        )
    )


def remove(patient: Patient, subscription_id) -> None:
    """Remove one of ``patient``'s subscriptions. :raises NotFound: not theirs."""
    try:
        wanted = uuid.UUID(str(subscription_id))
    except ValueError:
        raise NotFound(_("No such device."), "device") from None
    deleted = db.session.execute(
        sa.delete(PushSubscription).where(
            PushSubscription.id == wanted, PushSubscription.patient_id == patient.id
        )
    )
    if not deleted.rowcount:
        raise NotFound(_("No such device."), "device")


def switch_off(patient: Patient) -> int:
    """Push off for ``patient``: every subscription goes; how many there were."""
    return db.session.execute(
        sa.delete(PushSubscription).where(PushSubscription.patient_id == patient.id)
    ).rowcount


def address(patient: Patient) -> str | None:
    """The patient's subscriptions as the provider reads them (``Outgoing.to``), or None."""
    rows = of_patient(patient)
    if not rows:
        return None
    return json.dumps(
        [
            {"id": str(r.id), "endpoint": r.endpoint, "keys": {"p256dh": r.p256dh, "auth": r.auth}}
            for r in rows
        ]
    )


def forget(subscription_ids: list[str]) -> None:
    """Drop subscriptions the push service says are gone (404, 410), in the current clinic."""
    if subscription_ids:
        db.session.execute(
            sa.delete(PushSubscription).where(
                PushSubscription.id.in_([uuid.UUID(i) for i in subscription_ids])
            )
        )


def used(subscription_ids: list[str]) -> None:
    if subscription_ids:
        db.session.execute(
            sa.update(PushSubscription)
            .where(PushSubscription.id.in_([uuid.UUID(i) for i in subscription_ids]))
            .values(last_used_at=utcnow())
        )


_BROWSERS = (
    ("Edg", "Edge"),
    ("OPR", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Firefox", "Firefox"),
    ("FxiOS", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chrome", "Chrome"),
    ("Safari", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def device_label(user_agent: str) -> str:
    """A short name for a device, from its user agent: "Chrome · Android"."""
    agent = user_agent or ""
    browser = next((name for token, name in _BROWSERS if re.search(rf"\b{token}\b", agent)), "")
    system = next((name for token, name in _SYSTEMS if token in agent), "")
    return " · ".join(p for p in (browser, system) if p) or _("Browser")


def _b64(value) -> bytes | None:
    if not isinstance(value, str) or len(value) > 200:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def forget_all() -> int:
    """Drop every clinic's subscriptions (new VAPID keys: they cannot be used any more)."""
    return db.session.execute(sa.delete(PushSubscription)).rowcount
