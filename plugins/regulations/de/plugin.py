"""Germany: double opt-in and STOPP, quiet hours, German locale, 112 and 116117.

Sources of the rules and of their defaults (each default is a setting):
- Consent: § 7 Abs. 2 Nr. 2 UWG (electronic advertising only with prior express consent);
  the courts require double opt-in as its proof (BGH, 10.02.2011, I ZR 164/09): a consent
  counts once the patient confirmed it by a link or by replying JA.
- Opt-out: § 7 Abs. 3 Nr. 4 UWG (a way to object in every message): STOPP or STOP.
- Quiet hours: no statutory window for SMS; a setting, by default 08:00-20:00, Monday to
  Saturday, never on Sundays and public holidays (the Sunday rest of Art. 140 GG / Art. 139
  WRV, holidays per Land: set the region, e.g. BY).
- Emergency numbers: 112 (emergencies), 116117 (ärztlicher Bereitschaftsdienst, the on-call
  doctor out of hours).
- Retention: contents one year, delivery records three years (§ 195 BGB, the regular
  limitation period).
"""

from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    CountryProfile,
)
from plugins.regulations.rules import CountryRules

kind = "regulation"
name = _l("Rules of Germany")
description = _l(
    "Germany: double opt-in, STOPP replies, quiet hours 08:00-20:00 (no Sundays or holidays), "
    "German locale, emergency numbers 112 and 116117."
)

hooks = CountryRules(
    country="DE",
    plugin="de",
    name=_l("Germany"),
    profile=CountryProfile(
        locale="de",
        emergency_number="112",
        on_call_number="116117",
        double_opt_in=True,
        languages=("de",),
    ),
    stop_words=("STOPP", "STOP"),
    confirm_words=("JA",),
)
