"""France: consent and STOP, the STOP mention, quiet hours, French locale, 15 and 112.

Sources of the rules and of their defaults (each default is a setting):
- Consent to non-essential messages and opt-out: Code des postes et des communications
  électroniques, art. L34-5 (prior consent for prospecting by automated means, a free way to
  object in every message); CNIL, "La prospection commerciale par SMS et MMS".
- "STOP au 36xxx" and promotional/transactional short codes: the code of conduct of the
  Fédération Française des Télécoms for SMS+ and business SMS ("Recommandations
  déontologiques", the 36xxx opt-out short codes).
- Quiet hours: the same code of conduct and the operators' 2024 business-messaging charter:
  no promotional SMS on Sundays and public holidays, nor before 08:00 or after 20:00 (the
  charter allows up to 22:00 on working days: a setting, capped at 22:00).
- Sender IDs: the operators refuse generic alphanumeric senders ("INFO", "SMS") and French
  mobile numbers (06, 07) as senders of automated traffic (ARCEP numbering plan, decision
  2022-1583, and the FFTélécoms code of conduct).
- Emergency numbers: 15 (SAMU, medical emergencies) and 112 (European emergency number).
- Retention: contents one year, delivery records three years (CNIL: prospects' data are
  kept three years from the last contact).
"""

from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    CountryProfile,
)
from plugins.regulations.rules import CountryRules

kind = "regulation"
name = _l("Rules of France")
description = _l(
    "France: consent and STOP replies, the STOP mention, quiet hours Monday to Saturday "
    "08:00-20:00, French locale, emergency numbers 15 and 112."
)

hooks = CountryRules(
    country="FR",
    plugin="fr",
    name=_l("France"),
    profile=CountryProfile(
        locale="fr", emergency_number="112", medical_emergency_number="15", languages=("fr",)
    ),
    stop_words=("STOP", "ARRET"),
    stop_mention=True,
    refused_senders=frozenset({"INFO", "SMS"}),
    mobile_sender_prefixes=("+336", "+337"),
)
