"""The clinic's patient records, for its staff: the list, a patient's page, new and edit
forms, and marking a record created online as checked. (Patients' own pages are
:mod:`core.web.patient`; what staff send from a patient's page is :mod:`core.web.patient_contact`.)

Routes only: parse the form, call :mod:`core.clinic.patients`, render.
"""

import uuid

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core import validation as check
from core.clinic import consent as consents
from core.clinic import patients, staff
from core.db import db
from core.delivery import log as message_log
from core.errors import ValidationError
from core.plugins import hooks_for
from core.web.staff_access import require_staff

bp = Blueprint("patients", __name__)
bp.before_request(require_staff)


@bp.route("/patients")
def index():
    query = request.args.get("q", "").strip()
    page = check.page(request.args.get("page"))
    to_check = request.args.get("to_check") == "1"
    rows, total = patients.search_patients(query, page, to_check=to_check)
    db.session.commit()  # the audit of the search
    return render_template(
        "clinic/patients.html",
        patients=rows,
        total=total,
        query=query,
        page=page,
        pages=max(1, -(-total // patients.PAGE_SIZE)),
        to_check=to_check,
        to_check_count=patients.count_to_check(),
    )


@bp.route("/patients/new", methods=["GET", "POST"])
def new():
    if request.method == "GET":
        return _patient_form(None, {})
    try:
        patient = patients.create_patient(g.tenant, _patient_form_data())
    except ValidationError as exc:
        db.session.rollback()
        return _patient_form(None, request.form, exc), exc.status
    db.session.commit()
    flash(_("Patient %(name)s created.", name=patient.full_name))
    return redirect(url_for(".view", patient_id=patient.id))


@bp.route("/patients/<uuid:patient_id>")
def view(patient_id: uuid.UUID):
    return patient_page(patient_id)


def patient_page(patient_id: uuid.UUID, error: ValidationError | None = None):
    """A patient's page for staff, with ``error`` shown on the form it concerns (a form of
    :mod:`core.web.patient_contact` refused): the page and its status."""
    patient = patients.get_patient(patient_id)
    hooks = hooks_for(g.tenant)
    profile = hooks.relais_country_profile(country_code=g.tenant.country_code)
    actions = [
        item
        for found in hooks.relais_patient_actions(
            tenant=g.tenant, user=current_user, patient=patient
        )
        for item in found or ()
        if not item.roles or current_user.role in item.roles
    ]
    page = render_template(
        "clinic/patient.html",
        patient=patient,
        actions=actions,
        attribute_labels=patients.attribute_labels(),
        sex_labels=patients.sex_labels(),
        channels=message_log.channel_labels(),
        consent=consents.overview(patient, bool(profile and profile.double_opt_in)),
        staff_methods=consents.staff_method_labels(),
        error=error,
        submitted=request.form if error else {},
    )
    db.session.commit()  # the audit of the read
    return page, (error.status if error else 200)


@bp.route("/patients/<uuid:patient_id>/reviewed", methods=["POST"])
def reviewed(patient_id: uuid.UUID):
    """Staff checked a record an online sign-up created: it leaves the list to check."""
    patient = patients.find_patient(patient_id)
    if patients.mark_reviewed(patient):
        db.session.commit()
        flash(_("Marked as checked."))
    return redirect(url_for(".view", patient_id=patient_id)), 303


@bp.route("/patients/<uuid:patient_id>/edit", methods=["GET", "POST"])
def edit(patient_id: uuid.UUID):
    patient = patients.get_patient(patient_id)
    if request.method == "GET":
        db.session.commit()
        return _patient_form(patient, {})
    try:
        patients.update_patient(g.tenant, patient, _patient_form_data())
    except ValidationError as exc:
        db.session.rollback()
        patient = patients.find_patient(patient_id)
        return _patient_form(patient, request.form, exc), exc.status
    db.session.commit()
    flash(_("Changes saved."))
    return redirect(url_for(".view", patient_id=patient.id))


def _patient_form_data() -> dict:
    form = request.form
    return {
        name: form.getlist(name) if name in patients.LIST_FIELDS else form.get(name, "")
        for name in patients.FIELDS
    }


def _patient_form(patient, submitted, error: ValidationError | None = None):
    return render_template(
        "clinic/patient_form.html",
        patient=patient,
        submitted=submitted,
        error=error,
        attribute_labels=patients.attribute_labels(),
        sex_labels=patients.sex_labels(),
        practitioners=staff.practitioners(),
        languages=patients.LANGUAGES,
        channels=message_log.channel_labels(),
    )
