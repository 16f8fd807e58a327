"""Patients' own pages on their clinic's subdomain (``/me/``), with a session of their own.

A patient session names its realm ``patient:<clinic id>``; a staff session names the clinic
id alone (see :mod:`core.web.auth`). Each side checks its own realm on every request, and
opening one session clears the other: a staff login grants nothing here, a patient session
nothing on staff pages, and neither anything on another clinic (the cookie is host-only).
The session is kept on the server (:mod:`core.sessions`): logging out ends every copy.

A patient comes in through an access link staff send (:mod:`core.delivery.access_links`), or
through a feature plugin's sign-in (the ``otp`` plugin's code by SMS), which calls
:func:`log_in_patient` the same way.
"""

from functools import wraps

import sqlalchemy as sa
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from core import sessions
from core.clinic import audit, consent
from core.clinic.models import ConsentAction, ConsentMethod, Patient
from core.db import db
from core.delivery import access_links, routing
from core.errors import NotFound
from core.plugins import DashboardAction, DashboardItem, DashboardLine, hooks_for
from core.vocabulary import CHANNELS
from core.web.auth import login_limit
from core.web.consent import by_channel

bp = Blueprint("patient", __name__, url_prefix="/me")

_REALM = "patient:"


def realm() -> str:
    """The session realm of the current clinic's patients."""
    return f"{_REALM}{g.tenant.id}"


def log_in_patient(patient: Patient) -> None:
    """Open a patient session for ``patient`` on this clinic, in a fresh session (no
    fixation, and whatever staff session the browser had is gone), in the caller's
    transaction."""
    sessions.start(realm(), patient.id)
    if "lang" not in session and patient.language in current_app.config["LANGUAGES"]:
        session["lang"] = patient.language
    g.pop("_relais_patient", None)


def log_out_patient() -> None:
    """End this patient session, every copy of its cookie (the caller commits)."""
    sessions.end()
    g.pop("_relais_patient", None)


def current_patient() -> Patient | None:
    """The patient of this request's session, or None (no session, staff, another clinic)."""
    if "_relais_patient" in g:
        return g._relais_patient
    patient = None
    patient_id = sessions.current(realm()) if g.get("tenant") is not None else None
    if patient_id is not None:
        patient = db.session.scalar(sa.select(Patient).where(Patient.id == patient_id))
    g._relais_patient = patient
    return patient


def patient_required(view):
    """Only for a patient of this clinic with a session: others get a 401 (JSON for JSON
    requests, else a page saying how to come in). The view finds them in ``g.patient``."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        patient = current_patient()
        if patient is None:
            message = _("Log in, or open the link your clinic sent you, to see this page.")
            if request.is_json or request.accept_mimetypes.best == "application/json":
                return jsonify({"error": {"code": "unauthorized", "message": message}}), 401
            return signed_out(message), 401
        g.patient = patient
        return view(*args, **kwargs)

    return wrapper


def signed_out(message: str) -> str:
    """The page for a patient without a session, with the ways in plugins offer."""
    ways_in = [
        link
        for found in hooks_for(g.tenant).relais_patient_sign_in_links(tenant=g.tenant)
        for link in found or ()
    ]
    return render_template("patient/signed_out.html", message=message, ways_in=ways_in)


@bp.app_context_processor
def patient_context() -> dict:
    """``patient_session``: the patient logged in on this page, for the patient layout."""
    wanted = has_request_context() and g.get("tenant") is not None
    return {"patient_session": current_patient() if wanted else None}


@bp.route("/access/<token>", methods=["GET", "POST"])
@login_limit
def access(token: str):
    """An access link: a page to continue (link scanners only GET), then the session."""
    try:
        if request.method == "GET":
            access_links.check_token(g.tenant, token)
            return render_template("patient/access.html")
        patient = access_links.use_token(g.tenant, token)
    except NotFound as exc:
        db.session.rollback()
        return render_template("patient/link_refused.html", message=exc.message), 404
    log_in_patient(patient)
    db.session.commit()
    return redirect(url_for(".home"))


@bp.get("/")
@patient_required
def home():
    """A patient's home: their clinic, emergency numbers, the cards plugins add (coming
    appointments, conversations, notifications on this device), their consents per channel,
    and the links plugins offer."""
    hooks = hooks_for(g.tenant)
    cards = [consent_card(g.tenant, g.patient)]
    for found in hooks.relais_patient_home_cards(tenant=g.tenant, patient=g.patient):
        cards += found or []
    cards.sort(key=lambda card: card.order)
    links = [
        link
        for found in hooks.relais_patient_links(tenant=g.tenant, patient=g.patient)
        for link in found or ()
    ]
    return render_template("patient/home.html", patient=g.patient, cards=cards, links=links)


def _double_opt_in(tenant) -> bool:
    profile = hooks_for(tenant).relais_country_profile(country_code=tenant.country_code)
    return bool(profile and profile.double_opt_in)


def consent_card(tenant, patient: Patient) -> DashboardItem:
    """The patient's consent to news and campaigns on each channel they can be reached by,
    with the button that changes it."""
    double_opt_in = _double_opt_in(tenant)
    with consent.preloaded([patient]):  # every channel's state in one query
        states = consent.states(patient)
    lines = []
    for channel, by in by_channel().items():
        if routing.address(tenant, patient, channel) is None:
            continue  # no way to reach them there: nothing to choose
        status = states[channel].status
        if status == ConsentAction.GIVEN and double_opt_in:
            state, tone = _("Awaiting your confirmation"), ""
        elif status in (ConsentAction.GIVEN, ConsentAction.CONFIRMED):
            state, tone = _("You receive them"), "ok"
        else:
            state, tone = _("You do not receive them"), ""
        receives = status in (ConsentAction.GIVEN, ConsentAction.CONFIRMED)
        step = ConsentAction.WITHDRAWN if receives else ConsentAction.GIVEN
        url = url_for(".change_consent", channel=channel, action=str(step))
        action = DashboardAction(_("Stop them") if receives else _("Receive them"), url)
        # "by SMS" ends a sentence elsewhere; here it starts the line.
        lines.append(DashboardLine(by[:1].upper() + by[1:], state, tone=tone, actions=(action,)))
    return DashboardItem(
        title=_("News and campaigns from your clinic"),
        count=0,
        url="",
        lines=tuple(lines),
        empty=_("Your clinic has no way to reach you yet."),
        order=50,
        note=_(
            "Choose how you receive them. Messages about your care, such as appointment "
            "reminders and answers to your messages, come whatever you choose here."
        ),
    )


@bp.post("/consents")
@patient_required
def change_consent():
    """The patient gives or withdraws their consent on a channel from their home page
    (``?channel=sms&action=given``): a step recorded as the patient's own (method
    ``form``), in the audit trail too."""
    channel, action = request.args.get("channel"), request.args.get("action")
    if channel not in CHANNELS or action not in (ConsentAction.GIVEN, ConsentAction.WITHDRAWN):
        raise NotFound(_("No such choice."))
    step = consent.record(g.patient, channel, ConsentAction(action), ConsentMethod.FORM, "patient")
    if step is not None:
        audit.record(f"consent.{action}", g.patient.id, by="patient")
    db.session.commit()
    words = {"clinic": g.tenant.name, "by": by_channel()[channel]}
    if action == ConsentAction.WITHDRAWN:
        flash(_("You will no longer receive news and campaigns from %(clinic)s %(by)s.", **words))
    elif _double_opt_in(g.tenant):
        flash(_("To start, confirm it with the message %(clinic)s is sending you %(by)s.", **words))
    else:
        flash(_("You will receive news and campaigns from %(clinic)s %(by)s.", **words))
    return redirect(url_for(".home"), 303)


@bp.post("/logout")
def logout():
    log_out_patient()
    db.session.commit()
    return signed_out(_("You are logged out.")), 200


__all__ = ["bp", "current_patient", "log_in_patient", "patient_required", "realm"]
