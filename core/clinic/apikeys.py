"""API keys: a clinic's integrators authenticate with ``Authorization: Bearer <key>``."""

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from core import configured
from core import validation as check
from core.clinic import audit
from core.clinic.models import ApiKey, Patient, User
from core.crypto import new_token, token_digest
from core.db import db, utcnow
from core.errors import NotFound, ValidationError
from tenants.scoping import current_tenant_id

PREFIX = "rl"  # a key's token starts with rl_<kind>_ (keys made before kinds: rl_, live)
# The kinds of keys, as GOV.UK Notify has them, and what the API keys page calls them.
KINDS = {
    "live": _l("Live: sends to patients"),
    "test": _l("Test: nothing leaves, a simulator answers"),
    "team": _l("Team: sends only to the clinic's staff"),
}
# What the message log calls the key a message came from.
KIND_NAMES = {"live": _l("live key"), "test": _l("test key"), "team": _l("team key")}
# How stale "last used" may be: a key's row is written at most once per interval, so that
# concurrent requests on one key never queue on its row lock (issue 14: 46 requests/s).
LAST_USE_EVERY = timedelta(minutes=1)
_recorded: dict[uuid.UUID, float] = {}  # key id -> when this process last wrote (monotonic)
_recorded_lock = threading.Lock()


def create_key(name: str, kind: str = "live") -> tuple[ApiKey, str]:
    """Create a key of ``kind`` (:data:`KINDS`) in the current clinic; returns it with the
    token, shown only once, which starts with its kind (``rl_test_...``).

    :raises ValidationError: on ``name`` (empty, too long) or ``kind`` (not a kind)."""
    name = check.text(name, "name", 100)
    if not name:
        raise ValidationError(_("This field is required."), "name")
    if kind not in KINDS:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(KINDS)), "kind")
    token = new_token(f"{PREFIX}_{kind}")
    key = ApiKey(name=name, kind=kind, digest=token_digest(token), hint=token[:12])
    db.session.add(key)
    db.session.flush()
    audit.record("api_key.create", key.id)
    return key, token


def staff_among(patients: list[Patient]) -> set[uuid.UUID]:
    """The ids of those ``patients`` who are the clinic's own staff: what a team key may send
    to. A patient is, when they have a phone or an e-mail and each one they have is a staff
    member's (so that no channel can reach anyone else)."""
    phones, emails = set(), set()
    for phone, email in db.session.execute(sa.select(User.phone, User.email)):
        phones.add(phone)
        emails.add(email.lower())
    return {
        p.id
        for p in patients
        if (p.phone or p.email)
        and (not p.phone or p.phone in phones)
        and (not p.email or p.email.lower() in emails)
    }


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


@dataclass(frozen=True)
class KeyInUse:
    """The key a request acts with (``g.api_key``): what the API needs of its row."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str


def key_for_token(token: str) -> KeyInUse | None:
    """The key of the current clinic a bearer token is; None if unknown or revoked.

    A key found is remembered by the process for ``CONFIG_SECONDS`` (:mod:`core.configured`),
    so that a request reads no row to authenticate: a key revoked in another process stops
    working within those seconds (at once in the process that revoked it). Unknown tokens
    are looked up every time (never remembered)."""
    digest = token_digest(token)
    return configured.remembered(
        ("api_key", current_tenant_id(), digest), lambda: _key_in_use(digest), misses=False
    )


def _key_in_use(digest: str) -> KeyInUse | None:
    found = db.session.execute(
        sa.select(ApiKey.id, ApiKey.tenant_id, ApiKey.kind).where(
            ApiKey.digest == digest, ApiKey.revoked_at.is_(None)
        )
    ).first()
    return KeyInUse(*found) if found is not None else None


def note_use(key: KeyInUse) -> None:
    """Record that ``key`` was just used, at most once per :data:`LAST_USE_EVERY`, without
    touching the request's transaction and without ever waiting for a lock.

    A process remembers when it last wrote each key, so most requests do nothing; the one
    that writes does so in its own short transaction (committed at once, whatever becomes of
    the request), with ``SKIP LOCKED``: when another process is writing the same row, this
    one has nothing to add. The condition on ``last_used_at`` keeps processes from writing
    the row more than about once an interval between them. Why not Redis: the first run has
    none, and a value to flush periodically would need a job and could be lost; one UPDATE a
    minute per key and process is nothing for the database.
    """
    now = time.monotonic()
    every = LAST_USE_EVERY.total_seconds()
    with _recorded_lock:
        if now - _recorded.get(key.id, -every) < every:
            return
        _recorded[key.id] = now
    at = utcnow()
    free = (
        sa.select(ApiKey.id)
        .where(
            ApiKey.tenant_id == key.tenant_id,
            ApiKey.id == key.id,
            sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at - LAST_USE_EVERY),
        )
        .with_for_update(skip_locked=True)
    )
    # A session of its own: the app role and the clinic's scope apply (they are set on each
    # transaction's begin), its commit is not the request's.
    with Session(db.engine) as session, session.begin():
        session.execute(
            sa.update(ApiKey)
            .where(ApiKey.tenant_id == key.tenant_id, ApiKey.id.in_(free.scalar_subquery()))
            .values(last_used_at=at)
            # Nothing a process remembers of the key changes (core.configured).
            .execution_options(synchronize_session=False, remembered=False)
        )
