"""The audit trail: every read of health data by staff or an integrator is recorded."""

import uuid

from flask import g
from flask_login import current_user

from core.db import db
from core.models import AuditEvent


def actor() -> str:
    """Who acts in the current request: ``user:<id>`` or ``api_key:<id>``."""
    key = g.get("api_key")
    if key is not None:
        return f"api_key:{key.id}"
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "system"


def record(
    action: str,
    object_id: uuid.UUID | None = None,
    detail: str | None = None,
    by: str | None = None,
) -> None:
    """Add an audit event to the current transaction (committed with the change it records).

    :param detail: a few words for the reader (never health data, a code or a secret).
    :param by: who acts, when it is not the request's staff member or key (``"visitor"``).
    """
    db.session.add(
        AuditEvent(
            actor=by or actor(),
            action=action,
            object_id=object_id,
            detail=detail[:200] if detail else None,
        )
    )
