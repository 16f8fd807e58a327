"""Passwords (Argon2id), authenticator-app codes (TOTP) and account lockout."""

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
from sqlalchemy.orm import Mapped, mapped_column

from core.crypto import EncryptedText
from core.db import UTCDateTime, created_column, utcnow
from core.errors import DomainError, ValidationError


class Credentials(UserMixin):
    """Password, authenticator-app secret and lockout state of anyone who logs in."""

    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText)
    totp_enrolled: Mapped[bool] = mapped_column(default=False)
    totp_last_counter: Mapped[int | None] = mapped_column(sa.BigInteger)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = created_column()

    @property
    def is_active(self) -> bool:
        return self.active


_hasher = PasswordHasher()  # Argon2id, memory-hard; parameters from argon2-cffi's RFC 9106 profile
MIN_PASSWORD_LENGTH = 12
# A hash to verify against when the e-mail is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("relais-timing-equaliser")


class LoginFailed(DomainError):
    status = 401
    code = "login_failed"


class AccountLocked(DomainError):
    status = 423
    code = "locked"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            _("The password must have at least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            "password",
        )
    return _hasher.hash(password)


def check_password(account: Credentials | None, password: str, now: datetime | None = None):
    """Verify a password, counting failures; returns the account or raises.

    :raises AccountLocked: while the account is locked (even with the right password).
    :raises LoginFailed: wrong e-mail or password, with the same message for both.
    """
    now = now or utcnow()
    if account is None or not account.active:
        _verify(_DUMMY_HASH, password)
        raise LoginFailed(_("Wrong e-mail or password."))
    _refuse_if_locked(account, now)
    if not _verify(account.password_hash, password):
        _count_failure(account, now)
        raise LoginFailed(_("Wrong e-mail or password."))
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return account


def check_code(account: Credentials, code: str, now: datetime | None = None) -> None:
    """Verify an authenticator-app code once: a code is refused after it was used.

    :raises AccountLocked, LoginFailed: as :func:`check_password`.
    """
    now = now or utcnow()
    _refuse_if_locked(account, now)
    totp = pyotp.TOTP(account.totp_secret)
    code = "".join(code.split())
    counter = None
    for drift in (0, -1, 1):  # accept one step of clock drift either way
        at = now + timedelta(seconds=drift * totp.interval)
        if code.isdigit() and totp.verify(code, for_time=at, valid_window=0):
            counter = totp.timecode(at)
            break
    if counter is None or (account.totp_last_counter or -1) >= counter:
        _count_failure(account, now)
        raise LoginFailed(_("This code is not valid. Enter the current code of your app."))
    account.totp_last_counter = counter
    account.failed_logins = 0
    account.locked_until = None


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


def _refuse_if_locked(account: Credentials, now: datetime) -> None:
    if account.locked_until and account.locked_until > now:
        minutes = max(1, int((account.locked_until - now).total_seconds() // 60) + 1)
        raise AccountLocked(
            ngettext(
                "Too many failed attempts: this account is locked for %(num)d more minute.",
                "Too many failed attempts: this account is locked for %(num)d more minutes.",
                minutes,
            )
        )


def _count_failure(account: Credentials, now: datetime) -> None:
    account.failed_logins = (account.failed_logins or 0) + 1
    if account.failed_logins >= current_app.config["LOGIN_MAX_ATTEMPTS"]:
        account.locked_until = now + timedelta(minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"])
        account.failed_logins = 0
