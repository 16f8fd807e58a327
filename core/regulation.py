"""What regulation plugins answer about a country (see the ``relais_country_profile`` hook)."""

import functools
import importlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

from core.vocabulary import PURPOSES


@dataclass(frozen=True)
class CountryProfile:
    """Locale and safety facts of a country, shown on its clinics' pages.

    :param emergency_number: the number patients must call in an emergency, shown wherever
        they could mistake messaging for an emergency service.
    :param medical_emergency_number: a national medical emergency line, if any (France: 15).
    :param on_call_number: the line of the on-call doctor out of hours, if any (Germany:
        116117), shown beside the emergency numbers.
    :param double_opt_in: a consent to non-essential messages counts only once the patient
        confirmed it (Germany); staff pages then say a consent awaits the confirmation.
    :param languages: the languages the country's patients are written to (ISO 639-1, among
        :data:`core.vocabulary.LANGUAGES`), the first being a new patient's until they choose;
        empty: the ``locale``'s language alone.
    """

    locale: str
    emergency_number: str = "112"
    medical_emergency_number: str | None = None
    on_call_number: str | None = None
    double_opt_in: bool = False
    languages: tuple[str, ...] = ()

    @property
    def default_language(self) -> str:
        """The language a new patient of the country is written to."""
        return self.languages[0] if self.languages else self.locale[:2]


@dataclass(frozen=True)
class Retention:
    """How long a country keeps messages (``relais_retention_policy``).

    :param contents: after this, a message's text, subject and attachments, and patients'
        replies, are erased (the delivery record stays, without them).
    :param records: after this, the delivery record itself (message row, its history and
        provider attempts) is deleted.
    """

    contents: timedelta
    records: timedelta


# Without a country's own policy: contents for a year, records for three (prescription of
# civil claims in several EU countries); regulation plugins say their country's.
DEFAULT_RETENTION = Retention(contents=timedelta(days=365), records=timedelta(days=3 * 365))

# Purposes that need no consent and are never deferred by quiet hours: what the patient asked
# for or expects (codes, reminders, replies, appointment changes). Others (campaigns,
# grouped communications, practice news) are non-essential.


# Template variables that hold health details (the reason of a visit, a specialty, results).
# The outbox renders a message a second time without them (``content["discreet"]``), the
# text regulation plugins put instead where a channel must not carry them (SMS, push, voice).
HEALTH_VARIABLES = frozenset({"reason", "specialty", "results", "diagnosis", "treatment"})


def is_transactional(purpose: str) -> bool:
    """True for a purpose patients need no consent for (:data:`core.vocabulary.PURPOSES`)."""
    known = PURPOSES.get(purpose)
    return known is not None and known.transactional


@dataclass(frozen=True)
class Verdict:
    """A regulation plugin's answer about an outgoing message (``relais_judge_message``).

    ``action``: ``allow``; ``defer`` until ``until``; ``deny`` with a ``reason``; ``amend``
    with a new ``text`` (e.g. a STOP mention added) and/or fewer ``channels`` (e.g. no
    voice call for a campaign). ``reasons`` say why to staff, in plain words ("quiet hours
    in France"): :class:`core.i18n.Phrase` objects, stored as codes and shown in each
    reader's language (a plain ``reason`` string is shown as it is, in every language);
    ``rule`` names the rule that gave it (e.g. ``"quiet_hours"``); the core fills ``plugin``.
    """

    action: str = "allow"
    until: datetime | None = None
    reason: str | None = None
    reasons: tuple = ()  # of core.i18n.Phrase (the kernel's modules do not import each other)
    text: str | None = None
    channels: tuple[str, ...] | None = None
    rule: str | None = None
    plugin: str | None = None

    ORDER = ("allow", "amend", "defer", "deny")

    @classmethod
    def strictest(cls, verdicts: list["Verdict"]) -> "Verdict":
        """Deny beats defer (the latest date) beats amend beats allow.

        Amendments compose before this is called (each plugin sees the text the previous
        ones amended), so the last amendment carries them all.
        """
        if not verdicts:
            return cls()
        worst = max(verdicts, key=lambda v: cls.ORDER.index(v.action))
        if worst.action == "defer":
            return max((v for v in verdicts if v.action == "defer"), key=lambda v: v.until)
        if worst.action == "amend":
            return [v for v in verdicts if v.action == "amend"][-1]
        return worst


@dataclass(frozen=True)
class QuietHours:
    """When non-essential messages may reach patients, in the patient's local time.

    :param start: first allowed minute of an allowed day.
    :param end: end of the window (exclusive: at ``end`` the window is closed).
    :param days: allowed weekdays, Monday = 0 (default Monday to Saturday).
    :param skip_holidays: no message on the country's (and region's) public holidays.
    """

    start: time = time(8)
    end: time = time(20)
    days: frozenset[int] = field(default_factory=lambda: frozenset(range(6)))
    skip_holidays: bool = True

    def next_allowed(
        self, at: datetime, timezone: str, country: str, subdivision: str | None = None
    ) -> datetime:
        """``at`` itself when a message may go then, else the first allowed minute after it.

        Computed in ``timezone`` (so daylight-saving changes fall where the patient lives);
        holidays from the ``holidays`` package for ``country`` and its ``subdivision``.
        Returns an aware UTC datetime.
        """
        zone = ZoneInfo(timezone)
        local = at.astimezone(zone)
        days_off = _days_off(country, subdivision, local.year) if self.skip_holidays else ()
        for offset in range(370):  # a window exists within a year, or there is none
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.days or day in days_off:
                continue
            opens = datetime.combine(day, self.start, zone)
            closes = datetime.combine(day, self.end, zone)
            if offset == 0 and opens <= local < closes:
                return at.astimezone(UTC)
            if local < opens:
                return opens.astimezone(UTC)
        raise ValueError("these quiet hours never open")


def preload() -> None:
    """Load every country's public holidays now, not when the first message is judged
    (168 ms, and some 10,000 objects): for a process about to serve for long."""
    importlib.import_module("holidays.countries")


@functools.lru_cache(maxsize=256)
def _days_off(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of ``year`` and the next (a window is looked for up to a year
    ahead), built once per process: building them costs more than judging a message."""
    found = holidays.country_holidays(country, subdiv=subdivision, years=(year, year + 1))
    return frozenset(found)
