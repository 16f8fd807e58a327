"""Login sessions kept on the server, so that ending one ends every copy of its cookie.

The signed session cookie holds a random session id; the database keeps only its SHA-256
(``login_sessions``), with the realm it was opened in (a clinic's staff: the clinic's id;
its patients: ``patient:<clinic id>``; operators: ``operator``) and its account. Every
request with a session looks its row up: a row that is gone (logout, "log out everywhere",
a password change, a deactivation), idle longer than ``SESSION_IDLE_MINUTES`` or older
than ``SESSION_MAX_HOURS`` opens nothing, whatever the cookie says.

Why the database and not Redis: the embedded first run has no Redis, and a session ends in
the same transaction as what ends it (a deactivation, a new password). A request writes
its row at most once a minute (``seen_at``), in a short transaction of its own.
"""

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, g, session
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, created_column, db, utcnow

TOUCH_EVERY = timedelta(minutes=1)  # how stale ``seen_at`` may be (idle times are minutes)


class LoginSession(db.Model):
    """One open session: the hash of its id, where it was opened and by whom."""

    __tablename__ = "login_sessions"
    __table_args__ = (sa.Index("ix_login_sessions_realm_account", "realm", "account_id"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # SHA-256 of the id
    realm: Mapped[str] = mapped_column(sa.String(60))
    account_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    created_at: Mapped[datetime] = created_column()
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def fresh_cookie() -> None:
    """Empty the cookie session but for the chosen language (no fixation across a login);
    the session it held, if any, ends (in the caller's transaction)."""
    token = session.get("sid")
    if token:
        db.session.execute(sa.delete(LoginSession).where(LoginSession.id == _digest(str(token))))
    g.pop("_relais_sessions", None)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def start(realm: str, account_id: uuid.UUID) -> None:
    """Open a session for ``account_id`` in ``realm``, in a fresh cookie session (the one
    the browser had ends), in the caller's transaction."""
    fresh_cookie()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        LoginSession(
            id=_digest(token), realm=realm, account_id=account_id, created_at=now, seen_at=now
        )
    )
    session["realm"], session["sid"] = realm, token
    session.permanent = True


def current(realm: str) -> uuid.UUID | None:
    """The account of this request's session in ``realm``, or None when it has none, or
    one that was ended, idle too long or too old."""
    cache = g.setdefault("_relais_sessions", {})
    if realm not in cache:
        cache[realm] = _look_up(realm)
    return cache[realm]


def end() -> None:
    """End this request's session (every copy of its cookie), in the caller's transaction."""
    fresh_cookie()


def end_all(realm: str, account_id: uuid.UUID) -> int:
    """End every session of ``account_id`` in ``realm`` (every browser, every copy), in the
    caller's transaction; returns how many were open."""
    done = db.session.execute(
        sa.delete(LoginSession).where(
            LoginSession.realm == realm, LoginSession.account_id == account_id
        )
    )
    g.pop("_relais_sessions", None)
    return done.rowcount


def purge(now: datetime | None = None) -> int:
    """Delete the rows of sessions that no longer open anything (idle or too old)."""
    now = now or utcnow()
    idle, longest = _limits()
    done = db.session.execute(
        sa.delete(LoginSession).where(
            sa.or_(LoginSession.seen_at < now - idle, LoginSession.created_at < now - longest)
        )
    )
    return done.rowcount


def _look_up(realm: str) -> uuid.UUID | None:
    token = session.get("sid")
    if not token or session.get("realm") != realm:
        return None
    digest = _digest(str(token))
    row = db.session.execute(
        sa.select(LoginSession.account_id, LoginSession.created_at, LoginSession.seen_at).where(
            LoginSession.id == digest, LoginSession.realm == realm
        )
    ).first()
    now = utcnow()
    idle, longest = _limits()
    if row is None or row.seen_at <= now - idle or row.created_at <= now - longest:
        return None
    if row.seen_at <= now - TOUCH_EVERY:
        # Its own short transaction: a page that only reads still keeps its session alive,
        # and the request's own transaction commits or rolls back as it would have.
        with db.engine.begin() as connection:
            connection.execute(
                sa.update(LoginSession)
                .where(LoginSession.id == digest, LoginSession.seen_at <= now - TOUCH_EVERY)
                .values(seen_at=now)
            )
    return row.account_id


def _limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return (
        timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
        timedelta(hours=config["SESSION_MAX_HOURS"]),
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
