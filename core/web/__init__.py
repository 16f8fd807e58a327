"""The clinic's pages: dashboard, patients, message log, staff, features, messaging rules and
API keys (the audit log is :mod:`core.web.audit`).

Routes only: parse the form, call a domain function, render. Every route needs a logged-in
staff member of this clinic; settings pages need an admin.
"""

import uuid
from functools import wraps

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core.clinic import apikeys, patients, settings, staff
from core.clinic import consent as consents
from core.clinic.models import ConsentAction, PatientAttribute, Role, User
from core.db import db
from core.delivery import access_links, outbox
from core.delivery import log as message_log
from core.errors import DomainError, ValidationError
from core.plugins import hooks_for, host
from tenants import provisioning

bp = Blueprint("web", __name__)


@bp.before_request
@login_required
def require_staff():
    if not isinstance(current_user, User):
        abort(404)


def admin_only(view):
    """Only for the clinic's admins: other staff get a 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.role != Role.ADMIN:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.route("/")
def index():
    _, total = patients.search_patients("", page=1)
    return render_template(
        "clinic/index.html", patient_count=total, to_check=patients.count_to_check()
    )


# --- patients ---------------------------------------------------------------------------------


@bp.route("/patients")
def patient_list():
    query = request.args.get("q", "").strip()
    page = request.args.get("page", 1, type=int) or 1
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
def patient_new():
    if request.method == "GET":
        return _patient_form(None, {})
    try:
        patient = patients.create_patient(g.tenant, _patient_form_data())
    except ValidationError as exc:
        db.session.rollback()
        return _patient_form(None, request.form, exc), exc.status
    db.session.commit()
    flash(_("Patient %(name)s created.", name=patient.full_name))
    return redirect(url_for(".patient_view", patient_id=patient.id))


@bp.route("/patients/<uuid:patient_id>")
def patient_view(patient_id: uuid.UUID):
    return _patient_page(patient_id)


def _patient_page(patient_id: uuid.UUID, error: ValidationError | None = None):
    patient = patients.get_patient(patient_id)
    profile = hooks_for(g.tenant).relais_country_profile(country_code=g.tenant.country_code)
    page = render_template(
        "clinic/patient.html",
        patient=patient,
        attribute_labels=attribute_labels(),
        channels=message_log.channel_labels(),
        consent=consents.overview(patient, bool(profile and profile.double_opt_in)),
        staff_methods=consents.staff_method_labels(),
        error=error,
        submitted=request.form if error else {},
    )
    db.session.commit()  # the audit of the read
    return page, (error.status if error else 200)


@bp.route("/patients/<uuid:patient_id>/reviewed", methods=["POST"])
def patient_reviewed(patient_id: uuid.UUID):
    """Staff checked a record an online sign-up created: it leaves the list to check."""
    patient = patients.find_patient(patient_id)
    if patients.mark_reviewed(patient):
        db.session.commit()
        flash(_("Marked as checked."))
    return redirect(url_for(".patient_view", patient_id=patient_id)), 303


@bp.route("/patients/<uuid:patient_id>/edit", methods=["GET", "POST"])
def patient_edit(patient_id: uuid.UUID):
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
    return redirect(url_for(".patient_view", patient_id=patient.id))


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
        attribute_labels=attribute_labels(),
        practitioners=staff.practitioners(),
        languages=patients.LANGUAGES,
        channels=message_log.channel_labels(),
    )


def attribute_labels() -> dict[str, str]:
    return {
        PatientAttribute.LONG_TERM_CONDITION: _("Long-term condition"),
        PatientAttribute.CHRONIC_DISEASE: _("Chronic disease"),
        PatientAttribute.PREGNANCY_FOLLOW_UP: _("Pregnancy follow-up"),
        PatientAttribute.NEEDS_SUPPORT: _("Needs support"),
    }


# --- message log ------------------------------------------------------------------------------


@bp.route("/messages")
def message_list():
    page = request.args.get("page", 1, type=int) or 1
    try:
        filters = message_log.parse_filters(request.args)
    except ValidationError as exc:
        return _message_log(message_log.Filters(), [], 0, 1, exc), exc.status
    rows, total = message_log.search_messages(filters, page)
    db.session.commit()  # the audit of the search
    return _message_log(filters, rows, total, page)


def _message_log(filters, rows, total: int, page: int, error: ValidationError | None = None):
    return render_template(
        "clinic/messages.html",
        filters=filters,
        submitted=request.args,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // message_log.PAGE_SIZE)),
        error=error,
        **_message_labels(),
    )


@bp.route("/messages/<uuid:message_id>")
def message_view(message_id: uuid.UUID):
    message, patient = message_log.read_message(message_id)
    events, attempts = message_log.history(message)
    db.session.commit()  # the audit of the read
    return render_template(
        "clinic/message.html",
        message=message,
        patient=patient,
        events=events,
        attempts=attempts,
        outcomes=message_log.outcome_labels(),
        steps=message_log.event_labels(),
        verdict_sentence=message_log.verdict_sentence,
        **_message_labels(),
    )


def _message_labels() -> dict:
    return {
        "masked": message_log.masked,
        "statuses": message_log.status_labels(),
        "channels": message_log.channel_labels(),
        "purposes": message_log.purpose_labels(),
    }


# --- staff ------------------------------------------------------------------------------------


def role_labels() -> dict[str, str]:
    return {
        Role.ADMIN: _("Administrator"),
        Role.PRACTITIONER: _("Practitioner"),
        Role.SECRETARY: _("Secretary"),
    }


@bp.route("/staff", methods=["GET", "POST"])
@admin_only
def staff_list():
    error = None
    if request.method == "POST":
        form = request.form
        try:
            user = staff.create_user(
                form.get("email", ""),
                form.get("name", ""),
                form.get("role", ""),
                form.get("password", ""),
                form.get("phone", ""),
            )
        except DomainError as exc:  # invalid, or the e-mail is taken
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(
                _(
                    "Account created for %(name)s. They set up their authenticator app at "
                    "first login.",
                    name=user.name,
                )
            )
            return redirect(url_for(".staff_list"))
    return render_template(
        "clinic/staff.html",
        users=staff.list_users(),
        error=error,
        submitted=request.form,
        roles=role_labels(),
    ), (error.status if error else 200)


@bp.route("/staff/<uuid:user_id>/active", methods=["POST"])
@admin_only
def staff_active(user_id: uuid.UUID):
    user = staff.find_user(user_id)
    staff.set_active(user, request.form.get("active") == "1", by=current_user)
    db.session.commit()
    return redirect(url_for(".staff_list"))


# --- features ---------------------------------------------------------------------------------


@bp.route("/settings/features", methods=["GET", "POST"])
@admin_only
def features():
    if request.method == "POST":
        plugin = request.form.get("plugin", "")
        provisioning.set_tenant_feature(g.tenant, plugin, request.form.get("enabled") == "1")
        db.session.commit()
        return redirect(url_for(".features"))
    offered = provisioning.country_plugins(g.tenant.country_code)
    features = [i for i in host().info.values() if i.kind == "feature" and i.name in offered]
    return render_template(
        "clinic/features.html", features=features, disabled=provisioning.disabled_features(g.tenant)
    )


# --- messaging rules: the plugins' settings a clinic chooses for itself ------------------------


@bp.route("/settings/rules", methods=["GET", "POST"])
@admin_only
def rules():
    error = plugin = None
    if request.method == "POST":
        plugin = request.form.get("plugin", "")
        if plugin not in settings.clinic_choices(g.tenant):
            abort(404)  # a plugin not enabled here, or with nothing a clinic chooses
        try:
            settings.save_clinic(g.tenant, plugin, request.form)
        except ValidationError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Settings saved."))
            return redirect(url_for(".rules"))
    return render_template(
        "clinic/rules.html",
        choices=settings.clinic_choices(g.tenant),
        info=host().info,
        error=error,
        error_plugin=plugin,
        submitted=request.form,
    ), (error.status if error else 200)


# --- API keys ---------------------------------------------------------------------------------


@bp.route("/settings/api-keys", methods=["GET", "POST"])
@admin_only
def api_keys():
    token = error = None
    if request.method == "POST":
        try:
            _key, token = apikeys.create_key(request.form.get("name", ""))
        except ValidationError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
    return render_template(
        "clinic/api_keys.html", keys=apikeys.list_keys(), token=token, error=error
    ), (error.status if error else 200)


@bp.route("/settings/api-keys/<uuid:key_id>/revoke", methods=["POST"])
@admin_only
def api_key_revoke(key_id: uuid.UUID):
    apikeys.revoke_key(key_id)
    db.session.commit()
    flash(_("The key is revoked: requests using it are refused from now on."))
    return redirect(url_for(".api_keys"))


# --- messages to a patient ---------------------------------------------------------------------


@bp.route("/patients/<uuid:patient_id>/messages", methods=["POST"])
def patient_message(patient_id: uuid.UUID):
    """Send a message to a patient now: through the outbox, never from this request."""
    patient = patients.find_patient(patient_id)
    channels = request.form.getlist("channels") or ["sms"]
    try:
        outbox.send(g.tenant, patient, "transactional", request.form.get("text", ""), {}, channels)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.message)
        return redirect(url_for(".patient_view", patient_id=patient_id)), 303
    db.session.commit()
    flash(_("Message queued: it leaves in a moment."))
    return redirect(url_for(".patient_view", patient_id=patient_id)), 303


@bp.route("/patients/<uuid:patient_id>/consents", methods=["POST"])
def patient_consent(patient_id: uuid.UUID):
    """Note a consent the patient gave, or the opt-out they asked for: the step keeps who
    noted it and how, as proof."""
    try:
        channel, action, method = consents.parse_step(
            request.form, consents.STAFF_ACTIONS, consents.STAFF_METHODS
        )
    except ValidationError as exc:
        return _patient_page(patient_id, exc)  # nothing recorded
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
    return redirect(url_for(".patient_view", patient_id=patient_id)), 303


@bp.route("/patients/<uuid:patient_id>/access-link", methods=["POST"])
def patient_access_link(patient_id: uuid.UUID):
    """Send the patient a link to their own pages (SMS, else e-mail), through the outbox."""
    patient = patients.find_patient(patient_id)
    try:
        access_links.send_access_link(g.tenant, patient)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.message)
        return redirect(url_for(".patient_view", patient_id=patient_id)), 303
    db.session.commit()
    flash(_("Access link sent: it works once, within 24 hours."))
    return redirect(url_for(".patient_view", patient_id=patient_id)), 303
