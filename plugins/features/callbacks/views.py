"""The clinic admins' pages: the callback endpoint (register, rotate the secret, remove) and
the delivery log. Routes only: parse, call :mod:`.endpoints`, render."""

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from core.plugin_api import ValidationError, admin_only, db
from plugins.features.callbacks import endpoints
from plugins.features.callbacks.delivery import endpoint

bp = Blueprint("callbacks", __name__, url_prefix="/settings/callbacks", template_folder="templates")
LOG_SIZE = 100


def _page(secret=None, error=None, status=200):
    return render_template(
        "callbacks/settings.html",
        endpoint=endpoint(),
        secret=secret,
        error=error,
        submitted=request.form,
    ), status


@bp.get("/")
@admin_only
def index():
    return _page()


@bp.post("/")
@admin_only
def save():
    try:
        secret = endpoints.save_url(g.tenant, request.form.get("url"))
    except ValidationError as exc:
        db.session.rollback()
        return _page(error=exc, status=exc.status)
    db.session.commit()
    if secret is None:
        flash(_("Settings saved."))
        return redirect(url_for(".index"))
    return _page(secret=secret)


@bp.post("/rotate")
@admin_only
def rotate():
    secret = endpoints.rotate()
    db.session.commit()
    return _page(secret=secret) if secret else redirect(url_for(".index"))


@bp.post("/remove")
@admin_only
def remove():
    endpoints.remove()
    db.session.commit()
    flash(_("The endpoint is removed: nothing is sent to it any more."))
    return redirect(url_for(".index"))


@bp.get("/log")
@admin_only
def log():
    rows, _total = endpoints.delivery_log(LOG_SIZE)
    db.session.commit()
    refusals = {
        "refused:private": _("Not sent: the address leads to a private network."),
        "refused:unresolved": _("Not sent: the host name is not found."),
        "refused:scheme": _("Not sent: the address does not start with https://."),
    }
    return render_template("callbacks/log.html", rows=rows, refusals=refusals)
