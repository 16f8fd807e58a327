"""When reminders go: a clinic's schedule ("72h, 24h, 2h"), and one per appointment type.

Offsets are written as whole numbers of days, hours or minutes (``2d``, ``24h``, ``30m``);
they are kept in minutes, largest first. The parsers raise ``ValueError`` with a sentence for
the person typing them (the settings pages show it next to the field).
"""

import re

from flask_babel import gettext as _

MAX_OFFSETS = 4
UNITS = {"d": 24 * 60, "h": 60, "m": 1}
OFFSET = re.compile(r"(\d{1,5})\s*([dhm])")
TYPE_WORD = re.compile(r"[\w\- ]{1,40}")


def parse_offsets(text: str) -> list[int]:
    """``"72h, 24h, 2h, 30m"`` -> ``[4320, 1440, 120, 30]`` (minutes, largest first).

    :raises ValueError: more than four, zero, a duplicate, or not an offset.
    """
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(_("give at least one time before the appointment, e.g. 24h"))
    if len(parts) > MAX_OFFSETS:
        raise ValueError(_("at most %(n)d reminders per appointment", n=MAX_OFFSETS))
    minutes = []
    for part in parts:
        match = OFFSET.fullmatch(part)
        if match is None:
            raise ValueError(
                _("%(part)s is not a time before the appointment such as 72h, 2d or 30m", part=part)
            )
        value = int(match.group(1)) * UNITS[match.group(2)]
        if value <= 0:
            raise ValueError(
                _("a reminder comes some time before the appointment, not %(p)s", p=part)
            )
        if value in minutes:
            raise ValueError(_("%(part)s is given twice", part=part))
        minutes.append(value)
    return sorted(minutes, reverse=True)


def format_offsets(minutes: list[int]) -> str:
    """``[4320, 1440, 120, 30]`` -> ``"72h, 24h, 2h, 30m"``."""
    return ", ".join(f"{m // 60}h" if m % 60 == 0 else f"{m}m" for m in minutes)


def parse_schedule(text: str) -> str:
    """The ``schedule`` setting, normalised."""
    return format_offsets(parse_offsets(text))


def parse_by_type(text: str) -> dict[str, list[int]]:
    """``"vaccination: 48h, 2h; consultation: 24h"`` -> offsets by appointment type.

    :raises ValueError: a part without its type, a type given twice, or a bad schedule.
    """
    found: dict[str, list[int]] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        kind, sep, offsets = part.partition(":")
        kind = " ".join(kind.split()).lower()
        if not sep or not TYPE_WORD.fullmatch(kind):
            raise ValueError(
                _(
                    "write each type, a colon and its times, "
                    "e.g. vaccination: 48h, 2h; consultation: 24h"
                )
            )
        if kind in found:
            raise ValueError(_("the type %(type)s is given twice", type=kind))
        try:
            found[kind] = parse_offsets(offsets)
        except ValueError as exc:
            raise ValueError(f"{kind}: {exc}") from None
    return found


def format_by_type(schedules: dict[str, list[int]]) -> str:
    return "; ".join(f"{kind}: {format_offsets(m)}" for kind, m in schedules.items())


def parse_schedule_by_type(text: str) -> str:
    """The ``schedule_by_type`` setting, normalised."""
    return format_by_type(parse_by_type(text))
