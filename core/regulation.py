"""What regulation plugins answer about a country (see the ``relais_country_profile`` hook)."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CountryProfile:
    """Locale and safety facts of a country, shown on its clinics' pages.

    :param emergency_number: the number patients must call in an emergency, shown wherever
        they could mistake messaging for an emergency service.
    :param medical_emergency_number: a national medical emergency line, if any (France: 15).
    """

    locale: str
    emergency_number: str = "112"
    medical_emergency_number: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A regulation plugin's answer about an outgoing message (``relais_judge_message``).

    ``action``: ``allow``; ``defer`` until ``until``; ``deny`` with a ``reason``; ``amend``
    with a new ``text`` (e.g. a STOP mention added).
    """

    action: str = "allow"
    until: datetime | None = None
    reason: str | None = None
    text: str | None = None

    ORDER = ("allow", "amend", "defer", "deny")

    @classmethod
    def strictest(cls, verdicts: list["Verdict"]) -> "Verdict":
        """Deny beats defer (the latest date) beats amend beats allow."""
        if not verdicts:
            return cls()
        worst = max(verdicts, key=lambda v: cls.ORDER.index(v.action))
        if worst.action == "defer":
            return max((v for v in verdicts if v.action == "defer"), key=lambda v: v.until)
        return worst
