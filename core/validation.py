"""Checks of user input shared by every form and API: each raises ValidationError naming
the field, with a sentence the user can act on."""

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from core.errors import ValidationError


def phone(value: Any, country_code: str) -> str | None:
    """A phone number in E.164, read as a number of the clinic's country when not
    international. :raises ValidationError: on ``phone`` when it is not a valid number."""
    if value in (None, ""):
        return None
    try:
        number = phonenumbers.parse(str(value), country_code)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationError(_("This is not a valid phone number."), "phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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


def whole_number(value: Any, field: str) -> int:
    """A whole number typed in a form field."""
    try:
        return int(str(value or ""))
    except ValueError:
        raise ValidationError(_("Enter a whole number."), field) from None


def timezone(value: Any, field: str = "timezone") -> str:
    """An IANA time zone name, e.g. ``Europe/Paris``."""
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(_("Unknown time zone."), field) from None
    return str(value)
