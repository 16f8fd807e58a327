"""Telling a patient a message waits for them: through the delivery pipeline, by their best
channel, in their language, with purpose ``messaging`` — never the message's content."""

from flask import url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from core.plugin_api import LANGUAGES, Message, Patient, best_channels, send

FALLBACK = "en"


def language_of(patient: Patient) -> str:
    """The patient's language among those Relais writes (``fr-BE`` -> ``fr``), else English."""
    code = (patient.language or "").replace("-", "_").split("_")[0].lower()
    return code if code in LANGUAGES else FALLBACK


def new_message(tenant, patient: Patient, not_before=None) -> Message | None:
    """Put "you have a new message from <clinic>" in the outbox for ``patient`` (None when
    no channel reaches them). It leaves once the caller commits, or at ``not_before`` (a
    message scheduled for later)."""
    channels = best_channels(tenant, patient)
    if not channels:
        return None
    link = url_for("messaging_patient.index", tenant=tenant.slug, _external=True)
    with force_locale(language_of(patient)):
        text = _(
            "You have a new message from %(clinic)s. Read it on your page: %(link)s",
            clinic=tenant.name,
            link=link,
        )
        subject = _("New message from %(clinic)s", clinic=tenant.name)
    # The texts go in as variables, never as templates: a clinic's name is not Jinja.
    return send(
        tenant,
        patient,
        "messaging",
        {"text": "{{ text }}", "subject": "{{ subject }}"},
        {"text": text, "subject": subject},
        channels,
        not_before=not_before,
    )
