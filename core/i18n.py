"""The reader's language: stored sentences rendered in it, and one format per kind of value.

Facts are stored as codes, words are rendered when read. A sentence kept with a message (why
the rules refused it) is a :class:`Phrase`: the English source message and its parameters,
stored as JSON, translated by a catalog lookup in whichever language the page is read in.

Dates, times, numbers and phone numbers are shown one way each, in the current locale
(the page's, or the patient's inside ``force_locale``), through the functions below; the app
installs them as the Jinja filters ``date``, ``datetime``, ``time``, ``number`` and ``phone``.
"""

import re
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime as DateTime
from datetime import timedelta as TimeDelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from babel import Locale, dates, numbers
from flask import Flask, g
from flask_babel import get_locale, get_timezone
from flask_babel import gettext as _
from flask_babel.speaklater import LazyString


@dataclass(frozen=True)
class Phrase:
    """A sentence stored as a code: its English source ``msgid`` and its ``params``.

    The msgid must be marked for extraction where the phrase is made, with ``_l`` (or
    :func:`N_`): ``Phrase(_l("quiet hours in %(country)s"), country=...)``.
    A parameter is plain (a name, a number), another Phrase (translated too), or a value that
    reads differently in each language: :func:`phrase_country`, :func:`phrase_date`.
    """

    msgid: str
    params: dict[str, Any] = field(default_factory=dict)

    def __init__(self, msgid: Any, **params: Any) -> None:
        # A lazy string (``_l``) is stored as its English source: the catalog's key.
        object.__setattr__(self, "msgid", _source(msgid))
        params = {k: Phrase(v) if isinstance(v, LazyString) else v for k, v in params.items()}
        object.__setattr__(self, "params", params)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        """The sentence in the current locale (English where the catalog lacks it)."""
        values = {name: _rendered(value) for name, value in self.params.items()}
        return _(self.msgid, **values) if values else _(self.msgid)

    def to_json(self) -> dict[str, Any]:
        params = {
            name: value.to_json() if isinstance(value, Phrase) else value
            for name, value in self.params.items()
        }
        return {"msgid": self.msgid, "params": params} if params else {"msgid": self.msgid}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Phrase":
        params = {
            name: cls.from_json(value) if isinstance(value, dict) and "msgid" in value else value
            for name, value in (data.get("params") or {}).items()
        }
        return cls(data["msgid"], **params)


def _source(msgid: Any) -> str:
    """The English source of a message marked with ``_l``, or the text itself."""
    return msgid._args[0] if isinstance(msgid, LazyString) else str(msgid)


def N_(msgid: str) -> str:  # noqa: N802 — the name gettext tools know
    """Mark a fixed English text that is stored (a step of a message's history) and
    translated when it is shown: ``lifecycle.finish(message, ..., N_("no channel left"))``.
    Pages show a stored text through ``gettext``, so its translation is found by its text."""
    return msgid


def stored_text(text: str | None) -> str:
    """A fixed text stored in English (marked with :func:`N_`) in the reader's language; any
    other stored text (a provider's error) as it is."""
    return _(text) if text else ""


def phrase_country(code: str) -> dict[str, str]:
    """A country parameter of a :class:`Phrase`, named in the reader's language."""
    return {"country": code}


def phrase_date(value: Date) -> dict[str, str]:
    """A date parameter of a :class:`Phrase`, written the reader's way."""
    return {"date": value.isoformat()}


def _rendered(value: Any) -> Any:
    if isinstance(value, Phrase):
        return value.render()
    if isinstance(value, dict) and "country" in value:
        return country_name(value["country"])
    if isinstance(value, dict) and "date" in value:
        return format_date(Date.fromisoformat(value["date"]))
    return value


def country_name(code: str) -> str:
    """A country (ISO 3166 code) named in the reader's language ("Allemagne", "Germany")."""
    return get_locale().territories.get(code, code)


def phrases_to_json(phrases: list[Phrase]) -> list[dict[str, Any]]:
    return [p.to_json() for p in phrases]


def render_phrases(stored: list[dict[str, Any]] | None, separator: str = "; ") -> str:
    """Stored phrases (:func:`phrases_to_json`) as one text in the current locale."""
    return separator.join(Phrase.from_json(p).render() for p in stored or ())


# --- one format per kind ----------------------------------------------------------------------


def _local(value: DateTime, tz: str | None) -> DateTime:
    """An aware datetime on the wall clock of ``tz`` (else the request's: the clinic's)."""
    return value.astimezone(ZoneInfo(tz) if tz else get_timezone())


def format_date(value: Date | DateTime | None, weekday: bool = False, tz: str | None = None) -> str:
    """A date, e.g. "4 décembre 2026"; with ``weekday``: "vendredi 4 décembre 2026".

    A datetime is first put on the clinic's wall clock (or ``tz``'s)."""
    if value is None:
        return ""
    if isinstance(value, DateTime):
        value = _local(value, tz).date()
    return dates.format_date(value, "full" if weekday else "long", locale=get_locale())


# The 24-hour clock of every country served, English pages included: "16:00".
TIME_PATTERN = "HH:mm"


def format_time(value: DateTime | None, tz: str | None = None) -> str:
    """A time of day, e.g. "16:00", on the clinic's wall clock."""
    if value is None:
        return ""
    return dates.format_time(_local(value, tz), TIME_PATTERN, locale=get_locale())


def format_datetime(value: DateTime | None, weekday: bool = False, tz: str | None = None) -> str:
    """A moment, e.g. "4 décembre 2026, 16:00", on the clinic's wall clock."""
    if value is None:
        return ""
    locale = get_locale()
    glue = locale.datetime_formats["long"]  # e.g. "{1} 'à' {0}": the date, then the time
    day_pattern = locale.date_formats["full" if weekday else "long"].pattern
    pattern = glue.replace("{1}", day_pattern).replace("{0}", TIME_PATTERN)
    return dates.format_datetime(_local(value, tz), pattern, locale=locale)


def format_number(value: float | int | None, digits: int | None = None) -> str:
    """A number with the locale's separators; ``digits`` after the decimal sign if given."""
    if value is None:
        return "—"
    pattern = None if digits is None else "#,##0." + "0" * digits if digits else "#,##0"
    return numbers.format_decimal(value, pattern, locale=get_locale())


def format_percent(value: float | None, digits: int = 1) -> str:
    """A share (0.5) as a percentage in the locale's way ("50,0 %")."""
    if value is None:
        return "—"
    locale = get_locale()
    pattern = locale.percent_formats[None].pattern  # "#,##0 %" in French, "#,##0%" in English
    if digits:  # decimals after the last digit of the integer part
        pattern = re.sub(r"0(?=[^0#,]*$)", "0." + "0" * digits, pattern, count=1)
    return numbers.format_percent(value, pattern, locale=locale)


def format_duration(value: TimeDelta) -> str:
    """A length of time in the locale's words, rounded to its largest unit ("15 minutes")."""
    return dates.format_timedelta(value, threshold=1, locale=get_locale())


def format_phone(e164: str | None, region: str | None = None) -> str:
    """A phone number stored in E.164 as people of ``region`` (the clinic's country) write
    it: "06 12 34 56 78" in France; a number of another country in international form."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    same = region and phonenumbers.region_code_for_number(number) == region.upper()
    formats = phonenumbers.PhoneNumberFormat
    kind = formats.NATIONAL if same else formats.INTERNATIONAL
    return phonenumbers.format_number(number, kind)


def language_names(codes) -> list[tuple[str, str]]:
    """``(code, name)`` of each language, each named in itself ("Deutsch", "Français")."""
    return [(code, Locale.parse(code).get_display_name(code).capitalize()) for code in codes]


def install(app: Flask) -> None:
    """Make the formats Jinja filters, and the stored phrases readable in templates."""

    def phone(value, region=None):
        tenant = g.get("tenant")
        return format_phone(value, region or (tenant.country_code if tenant else None))

    app.jinja_env.filters.update(
        date=format_date,
        datetime=format_datetime,
        time=format_time,
        number=format_number,
        percent=format_percent,
        phone=phone,
        phrases=render_phrases,
        country_name=country_name,
        stored=stored_text,
    )
