"""Campaigns' pages (clinic admins): the list, the draft's form with its live count and
preview, the campaign's page with its progress bar, the JSON behind both, the CSV export.

Routes only: parse, call :mod:`.service`, render.
"""

from pathlib import Path

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core.plugin_api import (
    LANGUAGES,
    ValidationError,
    admin_only,
    attribute_labels,
    db,
    practitioners,
    record_audit,
    sex_labels,
    tenant_scope,
)
from plugins.features.campaigns import segments, service

bp = Blueprint("campaigns", __name__, template_folder="templates")
STATIC = Path(__file__).resolve().parent / "static"


def _error_json(exc: ValidationError):
    body = {"error": {"code": "invalid", "message": exc.message, "field": exc.field}}
    return jsonify(body), exc.status


FIELDS = (
    "name",
    "channels",
    "default_language",
    "start_at",
    "rate",
    *segments.Segment.__dataclass_fields__,
    *(f"template_{lang}" for lang in LANGUAGES),
)


CHANNEL_NAMES = {
    "sms": _l("SMS"),
    "email": _l("E-mail"),
    "push": _l("Notifications on the patient's devices"),
    "voice": _l("Phone call reading the text"),
}


def _channels() -> tuple[str, ...]:
    """The channels a page offers: the clinic's (see :func:`segments.offered`); on the
    operator's console, every one (each clinic's campaign checks its own)."""
    tenant = g.get("tenant")
    return segments.offered(tenant) if tenant is not None else segments.CHANNELS


@bp.context_processor
def names():
    """The words pages show for the codes campaigns store."""
    return {
        "language_names": {
            "fr": _("French"),
            "de": _("German"),
            "it": _("Italian"),
            "nl": _("Dutch"),
            "en": _("English"),
        },
        "channel_names": {c: str(CHANNEL_NAMES[c]) for c in segments.CHANNELS},
        "channel_choices": {c: str(CHANNEL_NAMES[c]) for c in _channels()},
        "sex_names": sex_labels(),
        "state_names": {
            "draft": _("Draft"),
            "scheduled": _("Scheduled"),
            "running": _("Running"),
            "paused": _("Paused"),
            "cancelled": _("Cancelled"),
            "done": _("Done"),
        },
        "bucket_names": {
            "queued": _("Queued"),
            "deferred": _("Deferred by quiet hours"),
            "sent": _("Sent"),
            "delivered": _("Delivered"),
            "failed": _("Failed"),
            "refused": _("Refused by the rules"),
            "cancelled": _("Cancelled"),
        },
    }


def _form_context(values, error=None, campaign=None):
    return {
        "values": values,
        "error": error,
        "campaign": campaign,
        "fields": FIELDS,
        "languages": LANGUAGES,
        "attributes": attribute_labels(),
        "practitioner_options": {str(u.id): u.name for u in practitioners()},
        "variable_names": ", ".join(f"{{{{ {n} }}}}" for n in service.VARIABLES),
    }


def _values_of(campaign) -> dict:
    if campaign is None:
        return {"channels": ["sms"], "default_language": g.tenant.language or "fr"}
    values = {
        "name": campaign.name,
        "channels": campaign.channels,
        "default_language": campaign.default_language,
        "rate": campaign.rate or "",
        **campaign.segment,
    }
    for lang, text in campaign.templates.items():
        values[f"template_{lang}"] = text
    return values


def form_values() -> dict:
    """The submitted form as a dict, the ticked boxes as lists."""
    values = {k: v for k, v in request.form.items()}
    for name in ("channels", "attributes", "languages", "sexes"):
        values[name] = request.form.getlist(name)
    return values


@bp.get("/campaigns")
@admin_only
def list_page():
    return render_template("campaigns/list.html", campaigns=service.listing())


@bp.route("/campaigns/new", methods=["GET", "POST"])
@bp.route("/campaigns/<campaign_id>/edit", methods=["GET", "POST"])
@admin_only
def edit_page(campaign_id=None):
    campaign = service.find(campaign_id) if campaign_id else None
    if campaign is not None and campaign.state != "draft":
        return redirect(url_for(".campaign_page", campaign_id=campaign.id), 303)
    if request.method == "POST":
        try:
            campaign = service.save(g.tenant, request.form, campaign, by=current_user.email)
        except ValidationError as exc:
            db.session.rollback()
            context = _form_context(form_values(), exc, campaign)
            return render_template("campaigns/edit.html", **context), exc.status
        db.session.commit()
        flash(_("Draft saved: check the count and the preview, then start it."))
        return redirect(url_for(".campaign_page", campaign_id=campaign.id), 303)
    return render_template(
        "campaigns/edit.html", **_form_context(_values_of(campaign), None, campaign)
    )


@bp.get("/campaigns/count")
@admin_only
def count_json():
    """The live count of the draft form: the segment in the query string."""
    try:
        segment = segments.parse(request.args)
        channels = [c for c in segments.offered(g.tenant) if c in request.args.getlist("channels")]
    except ValidationError as exc:
        return _error_json(exc)
    return jsonify(segments.count(g.tenant, segment, channels))


@bp.get("/campaigns/<campaign_id>")
@admin_only
def campaign_page(campaign_id, error=None, status=200):
    campaign = service.find(campaign_id)
    context = {"campaign": campaign, "error": error, "attributes": attribute_labels()}
    if campaign.state == "draft":
        context["counted"] = service.count(g.tenant, campaign)
        context["preview"] = service.preview(g.tenant, campaign)
    context["progress"] = service.progress(campaign)
    return render_template("campaigns/campaign.html", **context), status


@bp.post("/campaigns/<campaign_id>/<action>")
@admin_only
def act(campaign_id, action):
    campaign = service.find(campaign_id)
    try:
        if action == "start":
            service.start(g.tenant, campaign)
            flash(_("Campaign started."))
        elif action == "pause":
            service.pause(campaign)
            db.session.commit()
            flash(_("Campaign paused."))
        elif action == "resume":
            service.resume(g.tenant, campaign)
            flash(_("Campaign resumed."))
        elif action == "cancel":
            service.cancel(campaign)
            db.session.commit()
            flash(_("Campaign cancelled."))
        else:
            raise ValidationError(_("Unknown action."), "action")
    except ValidationError as exc:
        db.session.rollback()
        return campaign_page(campaign_id, error=exc, status=exc.status)
    return redirect(url_for(".campaign_page", campaign_id=campaign.id), 303)


@bp.get("/campaigns/<campaign_id>/progress")
@admin_only
def progress_json(campaign_id):
    return jsonify(service.progress(service.find(campaign_id)))


@bp.get("/campaigns/<campaign_id>/outcomes.csv")
@admin_only
def outcomes_csv(campaign_id):
    campaign = service.find(campaign_id)
    record_audit("campaign.outcomes.read", campaign.id)
    db.session.commit()
    tenant_id, campaign_id = g.tenant.id, campaign.id
    app = current_app._get_current_object()

    def lines():  # streamed after the request ended: in an app context and scope of its own
        with app.app_context(), tenant_scope(tenant_id):
            yield from service.outcomes_csv(service.find(campaign_id))

    return Response(
        lines(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}.csv"'},
    )


@bp.get("/campaigns/campaigns.js")
@admin_only
def script():
    """The pages' script: the draft form's live count, the progress bar's polling."""
    return Response(
        (STATIC / "campaigns.js").read_bytes(),
        mimetype="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )
