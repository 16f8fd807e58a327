"""Italy: consent and STOP/BASTA, registered sender IDs, quiet hours, Italian locale, 112, 118.

Sources of the rules and of their defaults (each default is a setting):
- Consent and opt-out: art. 130 del Codice in materia di protezione dei dati personali
  (d.lgs. 196/2003): automated messages for promotion need prior consent; every message says
  how to object (STOP or BASTA).
- Sender IDs: AGCOM, delibera 12/23/CIR, the registry of SMS alias (sender IDs must be
  registered by the company using them, from 2025): an unregistered sender is refused.
- Quiet hours: no statutory window for SMS; a setting, by default 08:00-20:00, Monday to
  Saturday, never on Sundays and public holidays.
- Emergency numbers: 112 (emergencies) and 118 (medical emergencies).
- Retention: contents one year, delivery records two years (Garante, provvedimento del 24
  febbraio 2005: data for marketing purposes kept at most 24 months).
"""

from datetime import timedelta

from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    CountryProfile,
    Retention,
)
from plugins.regulations.rules import CountryRules

kind = "regulation"
name = _l("Rules of Italy")
description = _l(
    "Italy: consent, STOP and BASTA replies, registered sender IDs, quiet hours 08:00-20:00, "
    "Italian locale, emergency numbers 112 and 118."
)

hooks = CountryRules(
    country="IT",
    plugin="it",
    name=_l("Italy"),
    profile=CountryProfile(
        locale="it", emergency_number="112", medical_emergency_number="118", languages=("it",)
    ),
    stop_words=("STOP", "BASTA"),
    registered_senders=True,
    retention=Retention(contents=timedelta(days=365), records=timedelta(days=2 * 365)),
)
