"""API keys: a clinic's integrators authenticate with ``Authorization: Bearer <key>``."""

import uuid

import sqlalchemy as sa
from flask_babel import gettext as _

from core import validation as check
from core.clinic import audit
from core.clinic.models import ApiKey
from core.crypto import new_token, token_digest
from core.db import db, utcnow
from core.errors import NotFound, ValidationError

PREFIX = "rl"


def create_key(name: str) -> tuple[ApiKey, str]:
    """Create a key in the current clinic; returns it with the token, shown only once."""
    name = check.text(name, "name", 100)
    if not name:
        raise ValidationError(_("This field is required."), "name")
    token = new_token(PREFIX)
    key = ApiKey(name=name, digest=token_digest(token), hint=token[:10])
    db.session.add(key)
    db.session.flush()
    audit.record("api_key.create", key.id)
    return key, token


def list_keys() -> list[ApiKey]:
    return list(db.session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at.desc())))


def revoke_key(key_id: uuid.UUID) -> ApiKey:
    key = db.session.scalar(sa.select(ApiKey).where(ApiKey.id == key_id))
    if key is None:
        raise NotFound(_("No such API key."))
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record("api_key.revoke", key.id)
    return key


def key_for_token(token: str) -> ApiKey | None:
    """The live key of the current clinic a bearer token is; None if unknown or revoked."""
    return db.session.scalar(
        sa.select(ApiKey).where(ApiKey.digest == token_digest(token), ApiKey.revoked_at.is_(None))
    )
