"""One-time codes that prove a phone number is yours: sent, checked, limited, audited.

A code is 6 digits (pyotp's HOTP over a fresh random secret), valid 5 minutes, good once.
Only a keyed hash of it is stored, bound to its challenge, and it is compared in constant
time; it is never logged, never put in an error message, and staff pages hide its message.

Requesting a code does the same work whoever the number belongs to (no account is looked
up before the code is proved), so answers and timing say nothing about who has an account.
Limits: 5 wrong tries void a code; a new code to a number no sooner than 30 s after the last,
and at most 5 an hour; a per-address limit sits on the request routes (flask-limiter).
"""

import hashlib
import hmac
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
import pyotp
import sqlalchemy as sa
from babel import Locale
from flask import current_app
from flask_babel import force_locale, get_locale, ngettext
from flask_babel import gettext as _

from core.plugin_api import (
    N_,
    DomainError,
    ValidationError,
    db,
    masked_phone,
    record_audit,
    send,
    utcnow,
)
from plugins.features.otp.models import Challenge

VALID_FOR = timedelta(minutes=5)
PROVED_FOR = timedelta(minutes=30)  # a proved number may finish its sign-up this long
MAX_WRONG_TRIES = 5
RESEND_AFTER = timedelta(seconds=30)
PER_HOUR = 5
DIGITS = 6
PURPOSES = ("patient", "staff")
CHANNELS = ("sms", "voice")

_TYPE = phonenumbers.PhoneNumberType
# Numbers a code may go to; premium-rate, shared-cost, toll-free, pager, personal and
# universal-access numbers are refused: codes sent there cost the clinic or reach nobody.
MOBILES = (_TYPE.MOBILE, _TYPE.FIXED_LINE_OR_MOBILE)
LANDLINES = (_TYPE.FIXED_LINE, _TYPE.VOIP)


class Refusal(DomainError):
    """A refusal the audit log and the limits keep: the caller commits what this request
    recorded (a wrong try, an audit event), then answers."""


class CodeRefused(Refusal):
    """A code that does not open anything: wrong, expired, used or void."""

    status = 401
    code = "code_refused"


class TooManyCodes(Refusal):
    """A code asked for too soon or too often; ``retry_after`` in seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, "phone")
        self.retry_after = retry_after

    def as_json(self) -> dict:
        answer = super().as_json()
        answer["error"]["retry_after"] = self.retry_after
        return answer


@dataclass(frozen=True)
class Number:
    """A phone number a code may go to: E.164, and whether it takes SMS."""

    e164: str
    mobile: bool


def parse_number(value, country_code: str) -> Number:
    """Read a phone number typed by a patient or staff member of a clinic of ``country_code``.

    :raises ValidationError: on ``phone``: empty, not a number, not of the clinic's country,
        or a premium-rate or service number.
    """
    text = str(value or "").strip()
    if not text:
        raise ValidationError(_("Enter your phone number."), "phone")
    try:
        number = phonenumbers.parse(text, country_code)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationError(
            _("This is not a valid phone number. Check it, e.g. 06 12 34 56 78."), "phone"
        )
    if phonenumbers.region_code_for_number(number) != country_code:
        country = Locale.parse(str(get_locale())).territories.get(country_code, country_code)
        raise ValidationError(_("Enter a phone number of %(country)s.", country=country), "phone")
    kind = phonenumbers.number_type(number)
    if kind not in MOBILES + LANDLINES:
        raise ValidationError(
            _(
                "Codes cannot go to premium-rate or service numbers. "
                "Enter your mobile or home phone number."
            ),
            "phone",
        )
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Number(e164, kind in MOBILES)


def request_code(
    tenant,
    number: Number,
    purpose: str,
    voice: bool = False,
    user_id: uuid.UUID | None = None,
    language: str | None = None,
) -> Challenge:
    """Send a new code to ``number`` (SMS to a mobile, else a call), in the caller's transaction.

    :param voice: "Call me instead": read the code by a call, even to a mobile.
    :param language: the language of the text (the page's, by default).
    :raises TooManyCodes: within 30 s of the last code to the number, or after 5 in an hour.
    """
    now = utcnow()
    by = _actor(user_id)
    digest = _keyed("phone", f"{tenant.id}:{number.e164}")
    _lock(digest)
    _check_limits(digest, number, now, by)
    # An SMS that cannot be delivered becomes a call; a landline gets the call at once.
    channels = ["voice"] if voice or not number.mobile else ["sms", "voice"]
    challenge = Challenge(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        purpose=purpose,
        user_id=user_id,
        phone=number.e164,
        phone_digest=digest,
        code_digest="",
        channel=channels[0],
        created_at=now,
        expires_at=now + VALID_FOR,
    )
    code = pyotp.HOTP(pyotp.random_base32(), digits=DIGITS).at(0)
    challenge.code_digest = _code_digest(challenge.id, code)
    language = language or str(get_locale())
    with force_locale(language):
        text = _(
            "Your code is %(code)s (%(clinic)s). It expires in 5 minutes. Never share it.",
            code=code,
            clinic=tenant.name,
        )
    # The text goes in as a variable, never as a template: a clinic's name is not Jinja.
    message = send(
        tenant,
        None,
        "otp",
        "{{ text }}",
        {"text": text},
        channels,
        expires_at=challenge.expires_at,  # a code that cannot leave in time never leaves
        confidential=True,
        address=number.e164,
        language=language,
    )
    challenge.message_id = message.id
    db.session.add(challenge)
    record_audit("otp.sent", challenge.id, f"{channels[0]} to {masked_phone(number.e164)}", by)
    return challenge


def verify(tenant, challenge_id, code, purpose: str) -> Challenge:
    """Check a code against its challenge; once right, it is used and opens nothing again.

    A wrong code is counted (the caller commits before answering, see :class:`Refusal`); the
    fifth voids the code.

    :raises ValidationError: on ``code`` when it is empty or not 6 digits, on ``challenge``
        when the challenge id is not one.
    :raises CodeRefused: wrong, expired, used or void; the message says which.
    """
    typed = "".join(str(code or "").split())
    if not typed:
        raise ValidationError(_("Enter the code you received."), "code")
    if not typed.isdigit() or len(typed) != DIGITS:
        raise ValidationError(_("The code has 6 digits."), "code")
    try:
        wanted = uuid.UUID(str(challenge_id))
    except ValueError:
        raise ValidationError(_("Ask for a code first."), "challenge") from None
    challenge = db.session.scalar(
        sa.select(Challenge)
        .where(Challenge.id == wanted, Challenge.purpose == purpose)
        .with_for_update()
    )
    now = utcnow()
    if challenge is None:
        raise ValidationError(_("Ask for a code first."), "challenge")
    by = _actor(challenge.user_id)
    if challenge.used_at is not None:
        raise CodeRefused(_("This code was already used. Ask for a new one."), "code")
    if challenge.voided_at is not None:
        raise CodeRefused(_too_many_tries(), "code")
    if challenge.expires_at <= now:
        raise CodeRefused(_("This code has expired. Ask for a new one."), "code")
    if not hmac.compare_digest(challenge.code_digest, _code_digest(challenge.id, typed)):
        challenge.wrong_tries += 1
        left = MAX_WRONG_TRIES - challenge.wrong_tries
        if left <= 0:
            challenge.voided_at = now
            record_audit("otp.blocked", challenge.id, N_("too many wrong codes"), by)
            raise CodeRefused(_too_many_tries(), "code")
        record_audit("otp.failed", challenge.id, f"wrong code ({challenge.wrong_tries})", by)
        raise CodeRefused(
            ngettext(
                "This code is not right. You can try %(num)d more time.",
                "This code is not right. You can try %(num)d more times.",
                left,
            ),
            "code",
        )
    challenge.used_at = now
    record_audit("otp.verified", challenge.id, masked_phone(challenge.phone), by)
    return challenge


def proved_phone(tenant, challenge_id, spend: bool = False) -> str | None:
    """The number a patient's code proved on this clinic less than 30 minutes ago through
    ``challenge_id``, and not yet spent on a sign-up; else None.

    :param spend: spend the proof (one conditional UPDATE: of requests sent at once, one
        gets the number), in the caller's transaction: a sign-up refused and rolled back
        keeps it.
    """
    try:
        wanted = uuid.UUID(str(challenge_id))
    except ValueError:
        return None
    now = utcnow()
    proof = (
        Challenge.tenant_id == tenant.id,
        Challenge.id == wanted,
        Challenge.purpose == "patient",
        Challenge.used_at > now - PROVED_FOR,
        Challenge.spent_at.is_(None),
    )
    if spend:
        spent = db.session.execute(
            sa.update(Challenge)
            .where(*proof)
            .values(spent_at=now)
            .execution_options(synchronize_session=False)
        )
        if spent.rowcount != 1:
            return None
        proof = (Challenge.tenant_id == tenant.id, Challenge.id == wanted)
    return db.session.scalar(sa.select(Challenge.phone).where(*proof))


def seconds_before_resend(challenge: Challenge) -> int:
    """How long the page waits before offering a new code to the same number."""
    left = (challenge.created_at + RESEND_AFTER - utcnow()).total_seconds()
    return max(0, math.ceil(left))


def find(challenge_id) -> Challenge | None:
    try:
        wanted = uuid.UUID(str(challenge_id))
    except ValueError:
        return None
    return db.session.scalar(sa.select(Challenge).where(Challenge.id == wanted))


def _check_limits(digest: str, number: Number, now: datetime, by: str) -> None:
    hour_ago = now - timedelta(hours=1)
    # Older codes count for nothing any more: the number's table rows stay a handful.
    db.session.execute(
        sa.delete(Challenge).where(
            Challenge.phone_digest == digest, Challenge.created_at <= hour_ago
        )
    )
    recent = db.session.scalars(
        sa.select(Challenge.created_at)
        .where(Challenge.phone_digest == digest, Challenge.created_at > hour_ago)
        .order_by(Challenge.created_at.desc())
    ).all()
    if recent and recent[0] > now - RESEND_AFTER:
        wait = math.ceil((recent[0] + RESEND_AFTER - now).total_seconds())
        record_audit("otp.refused", None, f"too soon for {masked_phone(number.e164)}", by)
        raise TooManyCodes(
            ngettext(
                "A code was just sent. Wait %(num)d second before asking for a new one.",
                "A code was just sent. Wait %(num)d seconds before asking for a new one.",
                wait,
            ),
            wait,
        )
    if len(recent) >= PER_HOUR:
        wait = math.ceil((recent[PER_HOUR - 1] + timedelta(hours=1) - now).total_seconds())
        record_audit(
            "otp.blocked",
            None,
            f"{PER_HOUR} codes this hour: {masked_phone(number.e164)}",
            by,
        )
        raise TooManyCodes(
            ngettext(
                "Too many codes were sent to this number. Try again in %(num)d minute.",
                "Too many codes were sent to this number. Try again in %(num)d minutes.",
                math.ceil(wait / 60),
            ),
            wait,
        )


def _lock(digest: str) -> None:
    """Serialise requests for one number until commit, so two at once cannot both pass the
    limits (PostgreSQL; SQLite writes one transaction at a time anyway)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"otp:{digest}"},
        )


def _keyed(kind: str, value: str) -> str:
    key = hashlib.sha256(f"relais.otp.{kind}:{current_app.secret_key}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _code_digest(challenge_id: uuid.UUID, code: str) -> str:
    return _keyed("code", f"{challenge_id}:{code}")


def _too_many_tries() -> str:
    return _("Too many wrong codes: this one no longer works. Ask for a new one.")


def _actor(user_id: uuid.UUID | None) -> str:
    """A staff member activating their account is themselves; anyone else is a visitor."""
    return f"user:{user_id}" if user_id else "visitor"
