"""The clinic's settings, for its admins: which features are on, the messaging rules it
chooses (its plugins' clinic settings), and its API keys.

Routes only: parse the form, call :mod:`core.clinic.settings`, :mod:`core.clinic.apikeys` or
:mod:`tenants.provisioning`, render.
"""

import uuid

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from core.clinic import apikeys, settings
from core.db import db
from core.delivery import limits
from core.delivery import log as message_log
from core.errors import ValidationError
from core.plugins import host
from core.web.staff_access import admin_only, require_staff
from tenants import provisioning

bp = Blueprint("settings", __name__, url_prefix="/settings")
bp.before_request(require_staff)


@bp.route("/features", methods=["GET", "POST"])
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


@bp.route("/rules", methods=["GET", "POST"])
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


@bp.route("/language", methods=["POST"])
@admin_only
def language():
    """The clinic's default language: its pages and its new patients' (a Swiss or Belgian
    clinic chooses; empty: its country's)."""
    provisioning.set_tenant_language(
        g.tenant, request.form.get("language", ""), current_app.config["LANGUAGES"]
    )
    db.session.commit()
    flash(_("Settings saved."))
    return redirect(url_for(".rules"))


# --- API keys ---------------------------------------------------------------------------------


@bp.route("/api-keys", methods=["GET", "POST"])
@admin_only
def api_keys():
    token = error = None
    if request.method == "POST":
        try:
            _key, token = apikeys.create_key(
                request.form.get("name", ""), request.form.get("kind", "live")
            )
        except ValidationError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
    return render_template(
        "clinic/api_keys.html",
        keys=apikeys.list_keys(),
        kinds=apikeys.KINDS,
        kind_names=apikeys.KIND_NAMES,
        submitted=request.form,
        token=token,
        error=error,
    ), (error.status if error else 200)


@bp.route("/api-keys/<uuid:key_id>/revoke", methods=["POST"])
@admin_only
def api_key_revoke(key_id: uuid.UUID):
    apikeys.revoke_key(key_id)
    db.session.commit()
    flash(_("The key is revoked: requests using it are refused from now on."))
    return redirect(url_for(".api_keys"))


# --- usage: today's messages against the clinic's limits --------------------------------------


@bp.get("/usage")
@admin_only
def usage():
    """Today's messages of each channel and purpose against the clinic's limits."""
    return render_template(
        "clinic/usage.html",
        uses=limits.usage(g.tenant),
        limits=limits.limits_for(g.tenant),
        channels=message_log.channel_labels(),
        purposes=message_log.purpose_labels(),
    )
