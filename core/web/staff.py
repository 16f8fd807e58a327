"""The clinic's staff accounts, for its admins: the list, a new account, switching one off
or on, logging one out everywhere.

Routes only: parse the form, call :mod:`core.clinic.staff`, render.
"""

import uuid

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.clinic import staff
from core.db import db
from core.errors import DomainError
from core.web.staff_access import admin_only, require_staff

bp = Blueprint("staff", __name__)
bp.before_request(require_staff)


@bp.route("/staff", methods=["GET", "POST"])
@admin_only
def index():
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
            return redirect(url_for(".index"))
    return render_template(
        "clinic/staff.html",
        users=staff.list_users(),
        practitioners=staff.practitioners(),
        assignments=staff.assignments(),
        error=error,
        submitted=request.form,
        roles=staff.role_labels(),
    ), (error.status if error else 200)


@bp.route("/staff/<uuid:user_id>/active", methods=["POST"])
@admin_only
def active(user_id: uuid.UUID):
    user = staff.find_user(user_id)
    staff.set_active(user, request.form.get("active") == "1", by=current_user)
    db.session.commit()
    return redirect(url_for(".index"))


@bp.route("/staff/<uuid:user_id>/sessions/end", methods=["POST"])
@admin_only
def end_sessions(user_id: uuid.UUID):
    """Log a staff member out on every browser (a lost phone, a shared computer)."""
    user = staff.find_user(user_id)
    staff.end_sessions(user)
    db.session.commit()
    flash(_("%(name)s is logged out everywhere.", name=user.name))
    return redirect(url_for(".index"))


@bp.route("/staff/<uuid:user_id>/practitioners", methods=["POST"])
@admin_only
def works_for(user_id: uuid.UUID):
    """The practitioners a secretary works for (none ticked: all of them)."""
    user = staff.find_user(user_id)
    try:
        staff.set_works_for(user, request.form.getlist("practitioners"))
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message)
        return redirect(url_for(".index"), 303)
    db.session.commit()
    flash(_("Saved: the practitioners %(name)s works for.", name=user.name))
    return redirect(url_for(".index"), 303)
