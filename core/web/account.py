"""A staff member's own account: a new password, and "log out everywhere".

Routes only: parse the form, call :mod:`core.clinic.staff`, render.
"""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user

from core.clinic import staff
from core.db import db
from core.errors import DomainError, ValidationError
from core.web.auth import log_in
from core.web.staff_access import require_staff

bp = Blueprint("account", __name__)
bp.before_request(require_staff)


@bp.get("/account")
def index():
    return render_template("clinic/account.html", error=None)


@bp.post("/account/password")
def password():
    """A new password: every session of the account ends, this browser gets a new one."""
    user = current_user._get_current_object()
    form = request.form
    try:
        if form.get("password", "") != form.get("confirm", ""):
            raise ValidationError(_("The two new passwords differ."), "confirm")
        staff.change_password(user, form.get("current_password", ""), form.get("password", ""))
    except DomainError as exc:
        db.session.commit()  # a wrong current password counts as a failed try; nothing else
        return render_template("clinic/account.html", error=exc), exc.status
    log_in(user)
    db.session.commit()
    flash(_("Your password is changed. Every other session of your account has ended."))
    return redirect(url_for(".index"))


@bp.post("/account/sessions/end")
def end_everywhere():
    """Log out on every browser, this one included."""
    staff.end_sessions(current_user._get_current_object())
    logout_user()
    db.session.commit()
    return redirect(url_for("auth.login"))
