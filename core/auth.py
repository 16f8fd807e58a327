"""Passwords (Argon2id), authenticator-app codes (TOTP) and the lockout of repeated failures.

The lockout counts by e-mail address, not by account: an address that has no account locks
after the same failures and answers the same words with the same status as one that has, so
the answers never tell which addresses exist. Each check first takes its place in the count
with one conditional UPDATE (:func:`_take_a_try`), so requests sent at once cannot get more
checks than the limit between them.
"""

import hashlib
import hmac
import re
from datetime import datetime, timedelta

import pyotp
import segno
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import UserMixin
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.attributes import set_committed_value
from zxcvbn import zxcvbn

from core.crypto import EncryptedText
from core.db import UTCDateTime, created_column, db, utcnow
from core.errors import DomainError, ValidationError


class Credentials(UserMixin):
    """Password, authenticator-app secret and lockout state of anyone who logs in."""

    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText)
    totp_enrolled: Mapped[bool] = mapped_column(default=False)
    totp_last_counter: Mapped[int | None] = mapped_column(sa.BigInteger)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = created_column()

    @property
    def is_active(self) -> bool:
        return self.active


class LoginThrottle(db.Model):
    """Recent failed tries of one e-mail address in one realm (a clinic's staff, operators),
    known or not: the address only as a keyed hash."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tries: Mapped[int] = mapped_column(default=0)  # checks counted since the last success
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


_hasher = PasswordHasher()  # Argon2id, memory-hard; parameters from argon2-cffi's RFC 9106 profile
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128  # NIST SP 800-63B asks for at least 64; Argon2 hashes any length
# zxcvbn's score: 3 is "safely unguessable" (about 10^8 guesses and more). Its lists hold the
# passwords most found in breaches, words, names and keyboard patterns (NIST SP 800-63B 5.1.1.2).
MIN_PASSWORD_SCORE = 3
# A hash to verify against when the e-mail is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("relais-timing-equaliser")


class LoginFailed(DomainError):
    status = 401
    code = "login_failed"


class AccountLocked(DomainError):
    status = 423
    code = "locked"


def hash_password(password: str, context: tuple[str, ...] = ()) -> str:
    """Hash a new password after checking it: 12 to 128 characters, and not a common,
    breached or easily guessed one.

    :param context: words of the account (e-mail, name) the password must not be made of.
    :raises ValidationError: on ``password``.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            _("The password must have at least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            "password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            _("The password must have at most %(n)d characters.", n=MAX_PASSWORD_LENGTH),
            "password",
        )
    values = [value.lower() for value in (*context, "relais") if value]
    words = values + [word for value in values for word in re.split(r"[@.\s]+", value) if word]
    strength = zxcvbn(password, user_inputs=words, max_length=MAX_PASSWORD_LENGTH)
    if strength["score"] < MIN_PASSWORD_SCORE:
        raise ValidationError(
            _(
                "This password is too common or too easy to guess. Choose another one, "
                "for example a few unrelated words."
            ),
            "password",
        )
    return _hasher.hash(password)


def check_password(
    realm: str,
    email: str,
    account: Credentials | None,
    password: str,
    now: datetime | None = None,
) -> Credentials:
    """Verify the password typed for ``email``, counting the try; returns the account.

    An unknown or deactivated address is checked against a dummy hash and counted the same
    way, so its answers (and their time) are those of a wrong password.

    :param realm: where the address logs in (a clinic's id, ``"operator"``).
    :raises AccountLocked: after too many failures with this address (even with the right
        password), until the lock expires.
    :raises LoginFailed: wrong e-mail or password, with the same message for both.
    """
    now = now or utcnow()
    key = _throttle_key(realm, email)
    _take_a_try(key, now)
    if account is None or not account.active:
        _verify(_DUMMY_HASH, password)
        raise LoginFailed(_("Wrong e-mail or password."))
    if not _verify(account.password_hash, password):
        raise LoginFailed(_("Wrong e-mail or password."))
    _give_back_a_try(key)  # a right password is no failure; its code still counts
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return account


def check_code(realm: str, account: Credentials, code: str, now: datetime | None = None) -> None:
    """Verify an authenticator-app code once: a code is refused after it was used, even by
    requests sent at the same moment (the last used step is moved by one conditional UPDATE).

    :raises AccountLocked, LoginFailed: as :func:`check_password`.
    """
    now = now or utcnow()
    key = _throttle_key(realm, account.email)
    _take_a_try(key, now)
    totp = pyotp.TOTP(account.totp_secret)
    code = "".join(code.split())
    counter = None
    for drift in (0, -1, 1):  # accept one step of clock drift either way
        at = now + timedelta(seconds=drift * totp.interval)
        if code.isdigit() and totp.verify(code, for_time=at, valid_window=0):
            counter = totp.timecode(at)
            break
    if counter is None or not _use_step(account, counter):
        raise LoginFailed(_("This code is not valid. Enter the current code of your app."))
    clear_failures(realm, account.email)


def clear_failures(realm: str, email: str) -> None:
    """Forget the failed tries of ``email`` in ``realm`` (a complete login, a reset)."""
    key = _throttle_key(realm, email)
    # Kept, not deleted: a request waiting on the row (PostgreSQL) must still find it.
    db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.key == key)
        .values(tries=0, locked_until=None)
        .execution_options(synchronize_session=False)
    )


def purge_throttles(now: datetime | None = None) -> int:
    """Forget the counts no longer in force (their window and lock are over)."""
    now = now or utcnow()
    window = timedelta(minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"])
    done = db.session.execute(
        sa.delete(LoginThrottle).where(
            LoginThrottle.updated_at < now - window,
            sa.or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
        )
    )
    return done.rowcount


def start_enrolment(account: Credentials) -> None:
    """Give the account a new authenticator secret, to be confirmed with a first code."""
    account.totp_secret = pyotp.random_base32()
    account.totp_enrolled = False


def provisioning_uri(account: Credentials, issuer: str) -> str:
    return pyotp.TOTP(account.totp_secret).provisioning_uri(name=account.email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """An inline SVG QR code of the provisioning URI (it never leaves the page)."""
    return segno.make(uri, error="m").svg_inline(scale=5, dark="#111", light="#fff")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _throttle_key(realm: str, email: str) -> str:
    key = hashlib.sha256(f"relais.login:{current_app.secret_key}".encode()).digest()
    address = (email or "").strip().lower()
    return hmac.new(key, f"{realm}:{address}".encode(), hashlib.sha256).hexdigest()


def _take_a_try(key: str, now: datetime) -> None:
    """Count one more check of ``key`` before it is made, or refuse it while locked.

    One conditional UPDATE: it counts only while the address is not locked, and the try
    that reaches the limit sets the lock itself. On PostgreSQL the row stays locked until
    the request commits, so tries of one address are checked one after the other.
    """
    config = current_app.config
    window = timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"])
    _insert_ignoring_conflict(key, now)
    T = LoginThrottle
    # A lock that expired, or tries older than the window, count for nothing any more.
    afresh = sa.or_(T.locked_until.is_not(None), T.updated_at < now - window)
    tries = sa.case((afresh, 1), else_=T.tries + 1)
    counted = db.session.execute(
        sa.update(T)
        .where(T.key == key, sa.or_(T.locked_until.is_(None), T.locked_until <= now))
        .values(
            tries=tries,
            locked_until=sa.case((tries >= config["LOGIN_MAX_ATTEMPTS"], now + window)),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount == 1:
        return
    until = db.session.scalar(sa.select(T.locked_until).where(T.key == key)) or now
    minutes = max(1, int((until - now).total_seconds() // 60) + 1)
    raise AccountLocked(
        ngettext(
            "Too many failed attempts: this account is locked for %(num)d more minute.",
            "Too many failed attempts: this account is locked for %(num)d more minutes.",
            minutes,
        )
    )


def _give_back_a_try(key: str) -> None:
    T = LoginThrottle
    tries = sa.case((T.tries > 0, T.tries - 1), else_=0)
    db.session.execute(
        sa.update(T)
        .where(T.key == key)
        .values(
            tries=tries,
            locked_until=sa.case(
                (tries < current_app.config["LOGIN_MAX_ATTEMPTS"], None), else_=T.locked_until
            ),
        )
        .execution_options(synchronize_session=False)
    )


def _insert_ignoring_conflict(key: str, now: datetime) -> None:
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(
        dialect.insert(LoginThrottle)
        .values(key=key, tries=0, locked_until=None, updated_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )


def _use_step(account: Credentials, counter: int) -> bool:
    """Record ``counter`` as the last step used, unless it (or a later one) already was."""
    model = type(account)
    used = db.session.execute(
        sa.update(model)
        .where(
            model.id == account.id,
            sa.or_(model.totp_last_counter.is_(None), model.totp_last_counter < counter),
        )
        .values(totp_last_counter=counter)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        return False
    set_committed_value(account, "totp_last_counter", counter)
    return True
