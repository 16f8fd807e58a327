"""The patient's side of Web Push, under ``/me/`` (their own pages): turn notifications on
or off on a device, see and remove devices, and the service worker itself."""

from pathlib import Path

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from core.plugin_api import (
    DomainError,
    country_settings,
    db,
    declared_settings,
    patient_required,
)
from plugins.channels.webpush import subscriptions

STATIC = Path(__file__).resolve().parent / "static"

bp = Blueprint("webpush", __name__, url_prefix="/me", template_folder="templates")
bp.relais_public = True  # patients' pages: each route checks the patient's own session


def _settings() -> dict:
    values = {s.name: s.default for s in declared_settings("webpush")}
    values.update(country_settings(g.tenant.country_code, "webpush"))
    return values


@bp.get("/notifications")
@patient_required
def notifications():
    return render_template(
        "webpush/notifications.html",
        devices=subscriptions.of_patient(g.patient),
        public_key=_settings().get("vapid_public_key"),
    )


@bp.post("/notifications/subscriptions")
@patient_required
def subscribe():
    """Keep this browser's subscription (JSON from ``pushManager.subscribe()``)."""
    services = [s.strip() for s in str(_settings().get("push_services") or "").split(",")]
    try:
        row = subscriptions.subscribe(
            g.patient,
            request.get_json(silent=True),
            request.headers.get("User-Agent", ""),
            services,
        )
    except DomainError as exc:
        db.session.rollback()
        return jsonify(exc.as_json()), exc.status
    db.session.commit()
    return jsonify({"id": str(row.id), "device": row.device}), 201


@bp.post("/notifications/off")
@patient_required
def switch_off():
    """Push off for this patient: every device's subscription goes."""
    subscriptions.switch_off(g.patient)
    db.session.commit()
    if request.is_json:
        return jsonify({"devices": 0})
    flash(_("Notifications are off. Messages come by SMS or e-mail."))
    return redirect(url_for(".notifications"), 303)


@bp.post("/notifications/devices/remove")
@patient_required
def remove_device():
    try:
        subscriptions.remove(g.patient, request.form.get("device", ""))
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message)
        return redirect(url_for(".notifications"), 303)
    db.session.commit()
    flash(_("The device will no longer receive notifications."))
    return redirect(url_for(".notifications"), 303)


@bp.get("/sw.js")
def service_worker():
    """The service worker, at the top of ``/me/`` so that its scope covers the patient's
    pages."""
    return _script("sw.js")


@bp.get("/notifications.js")
def script():
    """The notifications page's script."""
    return _script("notifications.js")


def _script(name: str) -> Response:
    # Always checked for a newer version: an updated worker takes over at once.
    return Response(
        (STATIC / name).read_bytes(),
        mimetype="application/javascript",
        headers={"Cache-Control": "no-cache"},
    )
