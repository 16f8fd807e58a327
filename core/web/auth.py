"""Log in with a password and an authenticator-app code; enrol the app at first login.

Registered twice: on every clinic subdomain (staff accounts of that clinic) and on the
operator subdomain (operators). The session cookie is host-only, so a login on one clinic
is no login on another; the session also names its realm, checked on every request, and
its id must name an open session on the server (:mod:`core.sessions`): logging out ends
every copy of the cookie.
"""

import uuid

import sqlalchemy as sa
from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from core import auth, sessions
from core.clinic.models import User
from core.db import db
from core.errors import DomainError
from core.extensions import limiter, login_manager
from core.plugins import hooks_for
from core.web.redirects import same_host_path
from tenants.models import Operator

bp = Blueprint("auth", __name__)
login_limit = limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])


def realm() -> str:
    tenant = g.get("tenant")
    return str(tenant.id) if tenant is not None else "operator"


def _model():
    return User if g.get("tenant") is not None else Operator


@login_manager.user_loader
def load_account(account_id: str):
    """The account of this request's session: its realm, an open session on the server,
    an active account."""
    if session.get("realm") != realm() or str(sessions.current(realm())) != account_id:
        return None
    account = _account(account_id)
    return account if account is not None and account.active else None


def log_in(account) -> None:
    """Open a new session for ``account`` in this realm (a fresh cookie, a new id)."""
    sessions.start(realm(), account.id)
    login_user(account)


def _account(account_id: str | None):
    try:
        wanted = uuid.UUID(str(account_id))
    except ValueError:
        return None
    model = _model()
    return db.session.scalar(sa.select(model).where(model.id == wanted))


def _home():
    return url_for("console.index" if g.get("tenant") is None else "home.index")


@bp.route("/login", methods=["GET", "POST"])
@login_limit
def login():
    if current_user.is_authenticated:
        return redirect(_home())
    if request.method == "GET":
        return render_template("auth/login.html")
    email = request.form.get("email", "").strip().lower()
    model = _model()
    account = db.session.scalar(sa.select(model).where(model.email == email))
    try:
        auth.check_password(realm(), email, account, request.form.get("password", ""))
    except DomainError as exc:
        db.session.commit()  # keep the failure count
        return render_template("auth/login.html", error=exc.message, email=email), exc.status
    sessions.fresh_cookie()  # a fresh session at each login (no fixation)
    session["pending"] = str(account.id)
    session["realm"] = realm()
    if not account.totp_enrolled and not account.totp_secret:
        auth.start_enrolment(account)
    db.session.commit()
    if account.totp_enrolled:
        return redirect(url_for(".code"))
    return redirect(_activation_step(account) or url_for(".enrol"))


def pending_account():
    """The account between its password and its code (or its activation steps), or None."""
    if session.get("realm") != realm():
        return None
    return _account(session.get("pending"))


def _activation_step(account) -> str | None:
    """A clinic's plugins may ask a new staff member for a step before enrolment."""
    tenant = g.get("tenant")
    if tenant is None:
        return None
    return hooks_for(tenant).relais_activation_step(tenant=tenant, user=account)


@bp.route("/login/code", methods=["GET", "POST"])
@login_limit
def code():
    account = pending_account()
    if account is None or not account.totp_enrolled:
        return redirect(url_for(".login"))
    if request.method == "GET":
        return render_template("auth/code.html")
    return _finish(account, "auth/code.html")


@bp.route("/login/enrol", methods=["GET", "POST"])
@login_limit
def enrol():
    account = pending_account()
    if account is None or account.totp_enrolled:
        return redirect(url_for(".login"))
    step = _activation_step(account)
    if step:
        return redirect(step)
    issuer = g.tenant.name if g.get("tenant") is not None else _("Relais operator")
    uri = auth.provisioning_uri(account, issuer=f"Relais · {issuer}")
    context = {"qr": auth.qr_svg(uri), "secret": account.totp_secret}
    if request.method == "GET":
        return render_template("auth/enrol.html", **context)
    return _finish(account, "auth/enrol.html", **context)


def _finish(account, template: str, **context):
    try:
        auth.check_code(realm(), account, request.form.get("code", ""))
    except DomainError as exc:
        db.session.commit()
        return render_template(template, error=exc.message, **context), exc.status
    account.totp_enrolled = True
    log_in(account)
    db.session.commit()
    return redirect(_home())


@bp.route("/logout", methods=["POST"])
def logout():
    """End this session: every copy of its cookie opens nothing any more."""
    logout_user()
    sessions.end()
    db.session.commit()
    return redirect(url_for(".login"))


@bp.route("/language", methods=["POST"])
def language():
    """Remember the interface language chosen in the page footer."""
    chosen = request.form.get("lang")
    if chosen in current_app.config["LANGUAGES"]:
        session["lang"] = chosen
    return redirect(same_host_path(request.form.get("next"), _home()))


login_manager.login_view = "auth.login"
login_manager.blueprint_login_views = {"console": "operator_auth.login"}
login_manager.login_message = None


__all__ = ["bp", "log_in"]
