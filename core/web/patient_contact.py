"""What staff do for a patient from the patient's page: write to them, note a consent or an
opt-out they gave, send them a link to their own pages.

Routes only: parse the form, call :mod:`core.delivery.outbox`, :mod:`core.clinic.consent` or
:mod:`core.delivery.access_links`, then back to the patient's page (:mod:`core.web.patients`).
"""

import uuid

from flask import Blueprint, flash, g, redirect, request, url_for
from flask_babel import gettext as _

from core.clinic import consent as consents
from core.clinic import patients
from core.clinic.models import ConsentAction
from core.db import db
from core.delivery import access_links, outbox
from core.delivery import log as message_log
from core.errors import ValidationError
from core.web.patients import patient_page
from core.web.staff_access import require_staff

bp = Blueprint("patient_contact", __name__)
bp.before_request(require_staff)


def _back_to_patient(patient_id: uuid.UUID):
    return redirect(url_for("patients.view", patient_id=patient_id)), 303


@bp.route("/patients/<uuid:patient_id>/messages", methods=["POST"])
def message(patient_id: uuid.UUID):
    """Send a message to a patient now: through the outbox, never from this request."""
    patient = patients.find_patient(patient_id)
    channels = request.form.getlist("channels") or ["sms"]
    try:
        outbox.send(g.tenant, patient, "transactional", request.form.get("text", ""), {}, channels)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.message)
        return _back_to_patient(patient_id)
    db.session.commit()
    flash(_("Message queued: it leaves in a moment."))
    return _back_to_patient(patient_id)


@bp.route("/patients/<uuid:patient_id>/consents", methods=["POST"])
def consent(patient_id: uuid.UUID):
    """Note a consent the patient gave, or the opt-out they asked for: the step keeps who
    noted it and how, as proof."""
    try:
        channel, action, method = consents.parse_step(
            request.form, consents.STAFF_ACTIONS, consents.STAFF_METHODS
        )
    except ValidationError as exc:
        return patient_page(patient_id, exc)  # nothing recorded
    patient = patients.find_patient(patient_id)
    step = consents.record_step(patient, channel, action, method)
    db.session.commit()
    name = message_log.channel_labels()[channel]
    if step is None:
        flash(_("Already recorded for %(channel)s: nothing changed.", channel=name))
    elif action == ConsentAction.WITHDRAWN:
        flash(_("Opt-out recorded for %(channel)s.", channel=name))
    else:
        flash(_("Consent recorded for %(channel)s.", channel=name))
    return _back_to_patient(patient_id)


@bp.route("/patients/<uuid:patient_id>/access-link", methods=["POST"])
def access_link(patient_id: uuid.UUID):
    """Send the patient a link to their own pages (SMS, else e-mail), through the outbox."""
    patient = patients.find_patient(patient_id)
    try:
        access_links.send_access_link(g.tenant, patient)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.message)
        return _back_to_patient(patient_id)
    db.session.commit()
    flash(_("Access link sent: it works once, within 24 hours."))
    return _back_to_patient(patient_id)
