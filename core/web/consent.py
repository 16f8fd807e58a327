"""The links in patients' messages that stop non-essential messages on a channel (opt-out) or
confirm a consent (double opt-in): ``/consent/<token>`` on the clinic's subdomain.

Public: the patient needs no session, the signed link says who they are (see
:func:`core.clinic.consent.link`). A GET only shows a page with one button, as link previews and
mail scanners open links too; the POST, CSRF-protected like every form, records the step, then
the page says it is done.
"""

from contextlib import nullcontext

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from core.clinic import consent
from core.clinic.models import ConsentMethod
from core.db import db
from core.errors import NotFound

bp = Blueprint("consent", __name__)


def by_channel() -> dict[str, str]:
    """How a message comes, as said at the end of a sentence: "... by SMS"."""
    return {
        "sms": _("by SMS"),
        "email": _("by e-mail"),
        "push": _("by notification on your device"),
        "voice": _("by phone call"),
    }


@bp.route("/consent/<token>", methods=["GET", "POST"])
def page(token: str):
    try:
        patient, channel, action = consent.read_link(g.tenant, token)
    except NotFound as exc:
        db.session.rollback()
        return render_template("patient/link_refused.html", message=exc.message), 404
    if request.method == "POST":
        consent.record(patient, channel, action, ConsentMethod.LINK, "patient")
        db.session.commit()
        return redirect(url_for(".page", token=token), 303)
    state = consent.state(patient, channel)
    # In the patient's language, unless they chose one in the page's footer.
    chosen = session.get("lang") or patient.language
    speaking = force_locale(chosen) if chosen in current_app.config["LANGUAGES"] else nullcontext()
    with speaking:
        return render_template(
            "patient/consent.html",
            action=str(action),
            status=state.status,
            by=by_channel()[channel],
        )
