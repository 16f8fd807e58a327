"""What reminders say: a template per language, and the variables they are rendered with.

Templates are sandboxed Jinja, as every outbox template. A clinic may write its own per
language (settings ``template_fr``...); the defaults below fit in two SMS with the link and
say which words to reply. Dates and times are the clinic's wall clock (its time zone), in the
patient's language: an appointment at 09:00 in Paris reads 09:00 in summer and in winter.
"""

import functools
from datetime import datetime
from typing import Any

from flask_babel import force_locale, ngettext
from flask_babel import lazy_gettext as _l
from jinja2 import Environment, TemplateSyntaxError, meta

from core.plugin_api import LANGUAGES, ValidationError, format_date, format_time, render_message

FALLBACK = "en"

DEFAULT_TEMPLATES = {
    "fr": "Bonjour {{ patient }}, RDV le {{ date }} à {{ time }} avec {{ practitioner }} "
    "({{ place }}). Répondez OUI pour confirmer, NON pour annuler, "
    "ou : {{ link }}",
    "en": "Hello {{ patient }}, your appointment with {{ practitioner }} is on {{ date }} at "
    "{{ time }} ({{ place }}). Reply YES to confirm, NO to cancel, "
    "or: {{ link }}",
    "de": "Hallo {{ patient }}, Ihr Termin bei {{ practitioner }}: {{ date }} um {{ time }} "
    "({{ place }}). Antworten Sie JA zum Bestätigen, NEIN zum Absagen, "
    "oder: {{ link }}",
    "it": "Gentile {{ patient }}, appuntamento con {{ practitioner }} {{ date }} alle "
    "{{ time }} ({{ place }}). Risponda SI per confermare, NO per annullare, "
    "oppure: {{ link }}",
    "nl": "Beste {{ patient }}, uw afspraak bij {{ practitioner }}: {{ date }} om {{ time }} "
    "({{ place }}). Antwoord JA om te bevestigen, NEE om te annuleren, "
    "of: {{ link }}",
}
# The e-mail's subject (the text is its body).
SUBJECTS = {
    "fr": "Rappel : votre rendez-vous du {{ date }} à {{ time }}",
    "en": "Reminder: your appointment on {{ date }} at {{ time }}",
    "de": "Erinnerung: Ihr Termin am {{ date }} um {{ time }}",
    "it": "Promemoria: il suo appuntamento del {{ date }} alle {{ time }}",
    "nl": "Herinnering: uw afspraak op {{ date }} om {{ time }}",
}
# The variables a template may use, in the order the editor offers them, with what they hold.
VARIABLES = {
    "patient": _l("patient's first name"),
    "date": _l("date"),
    "time": _l("time"),
    "practitioner": _l("practitioner"),
    "place": _l("clinic and address"),
    "clinic": _l("clinic"),
    "address": _l("address"),
    "link": _l("link to confirm or cancel"),
}
SAMPLE_PATIENTS = {"fr": "Jeanne", "en": "Jane", "de": "Johanna", "it": "Giovanna", "nl": "Johanna"}


def language_of(patient) -> str:
    """The patient's language among the templates' (``fr-BE`` -> ``fr``), else English."""
    code = (patient.language or "").replace("-", "_").split("_")[0].lower()
    return code if code in LANGUAGES else FALLBACK


def when(tenant, at: datetime, language: str) -> dict[str, str]:
    """``date`` and ``time`` of a moment, on the clinic's wall clock, in ``language``."""
    return dict(_when(at, tenant.timezone, language))


@functools.lru_cache(maxsize=4096)
def _when(at: datetime, timezone: str, language: str) -> tuple[tuple[str, str], ...]:
    # Remembered: a batch of appointments shares its slots' times, and switching the
    # locale and formatting cost a third of scheduling an appointment's reminders.
    with force_locale(language):
        return (
            ("date", format_date(at, weekday=True, tz=timezone)),
            ("time", format_time(at, tz=timezone)),
        )


def variables(
    tenant, language: str, first_name: str, practitioner: str, at: datetime, address: str, link: str
) -> dict[str, Any]:
    return {
        "patient": first_name,
        "practitioner": practitioner,
        **when(tenant, at, language),
        "address": address or "",
        "place": f"{tenant.name}, {address}" if address else tenant.name,
        "link": link,
        "clinic": tenant.name,
    }


def message_template(text: str, language: str) -> dict[str, str]:
    """The outbox templates of a reminder: its text, and a subject for e-mail."""
    return {"text": text, "subject": SUBJECTS[language]}


def check_template(text: str) -> str:
    """A clinic's template: it must render with the reminders' variables, and use no other.

    :raises ValueError: with the template engine's complaint, or naming the unknown variables.
    """
    text = text.strip()
    try:
        # Only parsed, to list the names it uses (rendering is the outbox's sandbox).
        used = meta.find_undeclared_variables(Environment(autoescape=False).parse(text))  # noqa: S701
    except TemplateSyntaxError:
        used = set()  # the rendering below says what is wrong
    unknown = sorted(used - set(VARIABLES))
    if unknown:
        raise ValueError(
            ngettext(
                "Unknown variable: %(names)s. Use the buttons to insert one.",
                "Unknown variables: %(names)s. Use the buttons to insert them.",
                len(unknown),
                names=", ".join(f"{{{{ {name} }}}}" for name in unknown),
            )
        )
    sample = {
        "patient": "Jeanne",
        "practitioner": "Dr Martin",
        "date": "lundi 30 mars 2026",
        "time": "09:00",
        "address": "3 rue des Lilas",
        "place": "Clinic, 3 rue des Lilas",
        "link": "https://demo.example/appointments/r/x",
        "clinic": "Clinic",
    }
    try:
        render_message(text, sample)
    except ValidationError as exc:
        raise ValueError(exc.message) from None
    return text
