"""Netherlands: consent and STOP, quiet hours, Dutch locale, 112.

Sources of the rules and of their defaults (each default is a setting):
- Consent and opt-out: Telecommunicatiewet art. 11.7 (prior consent for unsolicited
  electronic communication, a free way to object in every message: STOP).
- Quiet hours: no statutory window for SMS; a setting, by default 08:00-20:00, Monday to
  Saturday, never on Sundays and public holidays.
- Emergency number: 112.
- Retention: contents one year, delivery records three years (no national rule for these
  records: GDPR art. 5(1)(e), storage limitation; confirm with your data protection officer).
"""

from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    CountryProfile,
)
from plugins.regulations.rules import CountryRules

kind = "regulation"
name = _l("Rules of the Netherlands")
description = _l(
    "Netherlands: consent, STOP replies, quiet hours 08:00-20:00 (no Sundays or holidays), "
    "Dutch locale, emergency number 112."
)

hooks = CountryRules(
    country="NL",
    plugin="nl",
    name=_l("Netherlands"),
    profile=CountryProfile(locale="nl", emergency_number="112", languages=("nl",)),
    stop_words=("STOP",),
)
