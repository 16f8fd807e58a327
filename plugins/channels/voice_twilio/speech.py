"""A message as a voice says it: the text prepared for speech, then the script of the call.

Text-to-speech engines read what they are given: ``31/03/2026`` comes out as "thirty-one
slash three...", a URL letter by letter, ``9h30`` as "nine h thirty". :func:`spoken` rewrites
a message for the ear in the patient's language (fr, de, it, nl, en; others are read as
English):

- web addresses are dropped: a listener can do nothing with one, and no phrase such as "see
  the message sent to you" is added, since a patient called on a landline may have no such
  message;
- dates (``31/03/2026``, ``31.03.2026``, ``2026-03-31``, day first) are said in full, weekday
  and month names from Babel's CLDR data ("mardi trente et un mars deux mille vingt-six");
- times (``09:30``, ``9h30``, ``9 h 30``, ``14h``, ``9:30 am``) as words ("neuf heures
  trente", "nine thirty a.m.");
- other numbers with num2words ("37,5" is "trente-sept virgule cinq"); a run of five digits or
  more (a reference, a phone number without spaces) digit by digit.

:func:`script` turns a message into what the call says: the message, a pause, "I repeat:" and
the message again; a sign-up or login code (purpose ``otp``) is spelt digit by digit with a
pause after each digit, and said twice. The Twilio TwiML and the staff's audio preview are
both rendered from that one script, so the preview is what the patient hears.
"""

import re
from dataclasses import dataclass
from datetime import date

from babel.dates import format_date
from num2words import num2words

from core.plugin_api import LANGUAGES

DEFAULT = "en"
# The locale of each language's voice (TwiML's <Say language>, Babel's month names).
LOCALES = {"fr": "fr-FR", "de": "de-DE", "it": "it-IT", "nl": "nl-NL", "en": "en-GB"}

# What the call says around the message, in the patient's language (not the staff's: these
# are not interface strings, so they are not in the gettext catalogues).
I_REPEAT = {
    "fr": "Je répète :",
    "de": "Ich wiederhole:",
    "it": "Ripeto:",
    "nl": "Ik herhaal:",
    "en": "I repeat:",
}
DECIMAL_POINT = {"fr": "virgule", "de": "Komma", "it": "virgola", "nl": "komma", "en": "point"}
PAUSE_AFTER_MESSAGE = 2  # seconds between the message and its repetition
PAUSE_AFTER_DIGIT = 1  # seconds after each digit of a code

# A web address, with the colon that may announce it, less the sentence's final punctuation.
_URL = re.compile(r"\s*:?\s*(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)]", re.IGNORECASE)
_DMY = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{4})\b")
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_TIME_12 = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?", re.IGNORECASE)
_TIME_24 = re.compile(r"\b([01]?\d|2[0-3])(?::|\s?h\s?)([0-5]\d)\b|\b([01]?\d|2[0-3])\s?h\b")
_LONG_RUN = re.compile(r"\d{5,}")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_CODE = re.compile(r"(?<!\d)\d{4,8}(?!\d)")


@dataclass(frozen=True)
class Say:
    """Words to say."""

    text: str


@dataclass(frozen=True)
class Pause:
    """Silence, in seconds."""

    seconds: int


def language_of(code: str | None) -> str:
    """The speech language for a patient's language code: itself if supported, else English."""
    code = (code or "").split("-")[0].lower()
    return code if code in LANGUAGES else DEFAULT


def spoken(text: str, language: str) -> str:
    """``text`` rewritten to be read aloud in ``language`` (see the module's docstring)."""
    lang = language_of(language)
    text = _URL.sub(" ", text)
    text = _DMY.sub(lambda m: _date(lang, int(m[3]), int(m[2]), int(m[1])) or m[0], text)
    text = _ISO.sub(lambda m: _date(lang, int(m[1]), int(m[2]), int(m[3])) or m[0], text)
    text = _TIME_12.sub(lambda m: _time_12(lang, m) or m[0], text)
    text = _TIME_24.sub(lambda m: _time_24(lang, m), text)
    text = _LONG_RUN.sub(lambda m: " ".join(_words(int(d), lang) for d in m[0]), text)
    text = _NUMBER.sub(lambda m: _number(m[0], lang), text)
    return _tidy(text)


def script(text: str, language: str, purpose: str = "transactional") -> list[Say | Pause]:
    """What a call says for a message: the message, a pause, "I repeat:", the message again.

    A code (purpose ``otp``: the first run of 4 to 8 digits) is said digit by digit, a pause
    after each, then once more after "I repeat:"; the words around it are said once.
    """
    lang = language_of(language)
    repeat = Say(I_REPEAT[lang])
    code = _CODE.search(text) if purpose == "otp" else None
    if code is None:
        message = Say(spoken(text, lang))
        return [message, Pause(PAUSE_AFTER_MESSAGE), repeat, message]
    digits: list[Say | Pause] = []
    for digit in code[0]:
        digits += [Say(_words(int(digit), lang)), Pause(PAUSE_AFTER_DIGIT)]
    before, after = spoken(text[: code.start()], lang), spoken(text[code.end() :], lang)
    steps = ([Say(before)] if before else []) + digits + [repeat] + digits
    return steps + ([Say(after)] if after.strip(" .") else [])


# --- dates, times, numbers ---------------------------------------------------------------------


def _date(lang: str, year: int, month: int, day: int) -> str | None:
    try:
        when = date(year, month, day)
    except ValueError:
        return None  # not a date (31/02/2026): left to the number rule
    full = format_date(when, "full", locale=LOCALES[lang].replace("-", "_"))
    # Babel gives weekday and month names and their order; the numbers are said as words.
    full = re.sub(rf"\b0?{day}\b\.?", _day(lang, day), full, count=1)
    year_words = num2words(year, lang=lang, to="year") if lang == "en" else _words(year, lang)
    return full.replace(str(year), year_words)


def _day(lang: str, day: int) -> str:
    if lang == "en":  # Babel's "31 March": "the thirty-first of March"
        return f"the {num2words(day, lang='en', to='ordinal')} of"
    if lang == "de":  # Babel's "31. März": "der einunddreißigste März"
        return f"der {num2words(day, lang='de', to='ordinal')}"
    if day == 1 and lang in ("fr", "it"):
        return {"fr": "premier", "it": "primo"}[lang]
    return _words(day, lang)


def _time_24(lang: str, match: re.Match) -> str:
    hours = int(match[1] if match[1] is not None else match[3])
    minutes = int(match[2] or 0)
    if lang == "en":  # the English say the time on a 12-hour clock
        half = "p" if hours >= 12 else "a"
        return f"{_english_time((hours - 1) % 12 + 1, minutes)} {half}.m."
    hour = _words(hours, lang)
    if lang == "fr":
        hour = re.sub(r"\bun$", "une", hour)  # une heure, vingt et une heures
        said = f"{hour} {'heure' if hours == 1 else 'heures'}"
    elif lang == "de":
        said = f"{'ein' if hours == 1 else hour} Uhr"
    elif lang == "nl":
        said = f"{hour} uur"
    else:  # it: "le nove e trenta"
        said = "l'una" if hours == 1 else f"le {hour}"
        return f"{said} e {_words(minutes, lang)}" if minutes else said
    return f"{said} {_words(minutes, lang)}" if minutes else said


def _time_12(lang: str, match: re.Match) -> str | None:
    hours, minutes = int(match[1]), int(match[2] or 0)
    if not 1 <= hours <= 12:
        return None
    if lang != "en":  # "9:30 pm" in a French message: say it on the 24-hour clock
        hours = hours % 12 + (12 if match[3].lower() == "p" else 0)
        pattern = _TIME_24.fullmatch(f"{hours}:{minutes:02d}")
        return _time_24(lang, pattern)
    return f"{_english_time(hours, minutes)} {match[3].lower()}.m."


def _english_time(hours: int, minutes: int) -> str:
    hour = _words(hours, "en")
    if minutes == 0:
        return f"{hour} o'clock"
    if minutes < 10:
        return f"{hour} oh {_words(minutes, 'en')}"
    return f"{hour} {_words(minutes, 'en')}"


def _number(text: str, lang: str) -> str:
    if re.fullmatch(r"\d+", text):
        return _with_zeros(text, lang)
    whole, _, fraction = re.split(r"([.,])", text)
    # A decimal: "three point two five" in English; "deux virgule cinquante" elsewhere, where
    # the part after the comma is said as a number (its leading zeros as zeros).
    if lang == "en":
        after = [_words(int(d), lang) for d in fraction]
    else:
        after = [_with_zeros(fraction, lang)]
    return " ".join([_words(int(whole), lang), DECIMAL_POINT[lang], *after])


def _with_zeros(digits: str, lang: str) -> str:
    """A number whose leading zeros are said ("01 42": "zéro un quarante-deux")."""
    significant = digits.lstrip("0")
    zeros = [_words(0, lang)] * (len(digits) - len(significant))
    return " ".join(zeros + ([_words(int(significant), lang)] if significant else []))


def _words(number: int, lang: str) -> str:
    return num2words(number, lang=lang)


def _tidy(text: str) -> str:
    """Spaces and punctuation left behind (a dropped URL: "at ." is "at.", "()" goes)."""
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([.,])", r"\1", text)
    return re.sub(r"^[\s.,;:]+", "", text).strip()
