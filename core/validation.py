"""Checks of user input shared by every form and API: each raises ValidationError naming
the field, with a sentence the user can act on."""

from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from core.errors import ValidationError
from core.phones import is_test_number


def phone(value: Any, country_code: str) -> str | None:
    """A phone number in E.164, read as a number of the clinic's country when not
    international; the documented test numbers (:data:`core.phones.TEST_NUMBERS`) are
    taken too. :raises ValidationError: on ``phone`` when it is not a valid number."""
    if value in (None, ""):
        return None
    try:
        number = phonenumbers.parse(str(value), country_code)
    except phonenumbers.NumberParseException:
        number = None
    e164 = number and phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number is None or not (phonenumbers.is_valid_number(number) or is_test_number(e164)):
        raise ValidationError(_("This is not a valid phone number."), "phone")
    return e164


def email(value: Any) -> str | None:
    """An e-mail address, normalised; None when empty. :raises ValidationError: on ``email``."""
    if value in (None, ""):
        return None
    try:
        return validate_email(str(value), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValidationError(_("This is not a valid e-mail address."), "email") from None


def birth_date(value: Any) -> date | None:
    """A date of birth (YYYY-MM-DD) that is possible; None when empty.
    :raises ValidationError: on ``birth_date``."""
    if value in (None, ""):
        return None
    try:
        born = date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(_("Use the form YYYY-MM-DD."), "birth_date") from None
    if born > date.today() or born.year < 1880:
        raise ValidationError(_("This birth date is not possible."), "birth_date")
    return born


def storable(value: str, field: str) -> str:
    """A text that can be stored and encrypted: no NUL character (PostgreSQL's text refuses
    it) and no lone surrogate (it has no UTF-8 form). :raises ValidationError: on ``field``."""
    if "\x00" in value or not _encodable(value):
        raise ValidationError(
            _("The field %(field)s holds a character that cannot be stored.", field=field), field
        )
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def text(value: Any, field: str, limit: int) -> str:
    """A text stripped of surrounding spaces, at most ``limit`` characters long, that can be
    stored (:func:`storable`). :raises ValidationError: on ``field``."""
    if value is not None and not isinstance(value, str | int | float):
        raise ValidationError(_("Enter a text."), field)
    text = ("" if value is None else str(value)).strip()
    if len(text) > limit:
        raise ValidationError(_("At most %(n)d characters.", n=limit), field)
    return storable(text, field)


INT_MAX = 2**31 - 1  # PostgreSQL's integer
MAX_PAGE = 100_000


def whole_number(value: Any, field: str, low: int = -INT_MAX, high: int = INT_MAX) -> int:
    """A whole number typed in a form field or a query, from ``low`` to ``high`` (by default
    what a PostgreSQL integer holds). :raises ValidationError: on ``field``."""
    text = str(value if value is not None else "").strip()
    try:
        number = int(text) if len(text) <= 20 else None
    except ValueError:
        number = None
    if number is None:
        raise ValidationError(_("Enter a whole number."), field)
    if not low <= number <= high:
        raise ValidationError(
            _("A whole number from %(low)d to %(high)d.", low=low, high=high), field
        )
    return number


def page(value: Any, field: str = "page") -> int:
    """A page number of a list (1 when not given). :raises ValidationError: on ``field``."""
    if value in (None, ""):
        return 1
    return whole_number(value, field, 1, MAX_PAGE)


DateOrTime = TypeVar("DateOrTime", date, datetime)
# The years a date may fall in: beyond them, nothing Relais does makes sense, and date
# arithmetic overflows (a day after 9999-12-31, a time zone applied to year 1).
FIRST_YEAR, LAST_YEAR = 1900, 2199


def plausible(value: DateOrTime, field: str) -> DateOrTime:
    """``value`` (a date or a datetime) when its year is from 1900 to 2199.
    :raises ValidationError: on ``field``."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValidationError(
            _("Give a date from the year %(first)d to %(last)d.", first=FIRST_YEAR, last=LAST_YEAR),
            field,
        )
    return value


def day(value: Any, field: str) -> date | None:
    """A date (YYYY-MM-DD) within :func:`plausible` years; None when empty.
    :raises ValidationError: on ``field``."""
    if value in (None, ""):
        return None
    try:
        parsed = date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(_("Use the form YYYY-MM-DD."), field) from None
    return plausible(parsed, field)


def moment(value: Any, field: str) -> datetime | None:
    """An aware time, or ISO 8601 text with its offset (``2026-11-23T09:00:00+01:00``),
    within :func:`plausible` years; None when empty. :raises ValidationError: on ``field``."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationError(_("Give an ISO 8601 time with its offset."), field)
    return plausible(parsed, field)


def timezone(value: Any, field: str = "timezone") -> str:
    """An IANA time zone name, e.g. ``Europe/Paris``."""
    name = str(value)
    try:
        if len(name) > 64:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(_("Unknown time zone."), field) from None
    return name
