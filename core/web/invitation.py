"""The page an invitation link opens on the clinic's subdomain: the invited admin chooses
their password, then logs in as every new staff member does (phone, authenticator app).

Routes only: parse the form, call :mod:`core.delivery.invitations`, render.
"""

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from core.db import db
from core.delivery import invitations
from core.errors import Conflict, NotFound, ValidationError
from core.web.auth import login_limit

bp = Blueprint("invitation", __name__)


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@login_limit
def accept(token: str):
    """GET shows the form (link scanners only GET); POST sets the password, once."""
    if g.get("tenant") is None:
        abort(404)
    error = None
    try:
        invitation = invitations.check_token(g.tenant, token)
        if request.method == "POST":
            invitations.accept(
                g.tenant,
                token,
                request.form.get("password", ""),
                request.form.get("confirmation", ""),
            )
            db.session.commit()
            flash(_("Your password is set. Log in with it to finish setting up your account."))
            return redirect(url_for("auth.login"))
    except NotFound as exc:
        db.session.rollback()
        return render_template("auth/invitation_refused.html", message=exc.message), 404
    except (ValidationError, Conflict) as exc:  # a weak password, or the e-mail taken since
        db.session.rollback()
        error = exc
    return render_template(
        "auth/invitation.html",
        invitation=invitation,
        error=error,
    ), (error.status if error else 200)
