"""Reminders' pages: the settings with their preview (admins), the figures (staff), the JSON
figures (API key), and the patient's page behind each reminder's link (public).

Routes only: parse, call :mod:`.service`, :mod:`.texts` or :mod:`.stats`, render.
"""

import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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
    session,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _

from core.plugin_api import (
    NotFound,
    ValidationError,
    admin_only,
    api_blueprint,
    api_operation,
    api_schema,
    check,
    clinic_setting_choices,
    db,
    plugin_setting,
    render_message,
    save_clinic,
    sms_segments,
    utcnow,
)
from plugins.features.appointments import AppointmentStatus
from plugins.features.reminders import links, service, stats, texts

bp = Blueprint("reminders", __name__, template_folder="templates")

api_bp = api_blueprint("reminders_api", __name__, "/api/v1")

_OUTCOMES = {
    "type": "object",
    "required": ["no_show_rate"],
    "properties": {"no_show_rate": {"type": ["number", "null"]}},
    "additionalProperties": {"type": "integer"},
}
STATS = api_schema(
    "ReminderStats",
    {
        "type": "object",
        "required": ["from", "to", "sent", "sent_by_channel", "confirmation_rate"],
        "properties": {
            "from": {"type": "string", "format": "date-time"},
            "to": {"type": "string", "format": "date-time"},
            "sent_by_channel": {"type": "object", "additionalProperties": {"type": "integer"}},
            "sent": {"type": "integer", "minimum": 0},
            "appointments_reminded": {"type": "integer", "minimum": 0},
            "appointments_confirmed": {"type": "integer", "minimum": 0},
            "confirmation_rate": {"type": ["number", "null"]},
            "with_reminders": _OUTCOMES,
            "without_reminders": _OUTCOMES,
        },
    },
)

link_bp = Blueprint("reminders_link", __name__, template_folder="templates")
link_bp.relais_public = True  # the patient's page: the signed link says which appointment

DEFAULT_DAYS_BACK = 30
STATIC = Path(__file__).resolve().parent / "static"


# --- settings and preview (admins) ------------------------------------------------------------


def _country_language(tenant) -> str:
    code = (tenant.country.locale or "").split("_")[0].lower()
    return code if code in texts.LANGUAGES else texts.FALLBACK


def sample_variables(tenant, language: str) -> dict:
    """A sample appointment: next Monday at 09:00 in the clinic, with a real link's length."""
    zone = ZoneInfo(tenant.timezone)
    today = utcnow().astimezone(zone).date()
    monday = today + timedelta(days=7 - today.weekday())
    starts_at = datetime.combine(monday, time(9), tzinfo=zone).astimezone(UTC)
    address = plugin_setting(tenant, "appointments", "address") or "3 rue des Lilas"
    return texts.variables(
        tenant,
        language,
        texts.SAMPLE_PATIENTS[language],
        "Dr Martin",
        starts_at,
        address,
        links.link(tenant, uuid.uuid4()),
    )


def preview(tenant, language: str, template: str) -> dict:
    """The text of a reminder by each channel, for the sample appointment.

    :raises ValidationError: on ``template_<language>`` when the template does not render.
    """
    values = sample_variables(tenant, language)
    try:
        texts.check_template(template)  # a variable misspelt says so, as saving it would
    except ValueError as exc:
        raise ValidationError(str(exc), f"template_{language}") from None
    try:
        content = render_message(texts.message_template(template, language), values)
    except ValidationError as exc:
        raise ValidationError(exc.message, f"template_{language}") from None
    encoding, count = sms_segments(content["text"])
    return {
        "sms": {
            "text": content["text"],
            "encoding": encoding,
            "segments": count,
            "characters": len(content["text"]),
        },
        "email": {"subject": content.get("subject", ""), "text": content["text"]},
        "voice": {"text": content["text"]},
    }


def _form_values(tenant) -> dict[str, str]:
    """What the form shows: the clinic's own values, else the ones in force."""
    shown = {}
    for choice in clinic_setting_choices(tenant).get(service.PLUGIN, []):
        value = choice.own if choice.own is not None else choice.inherited
        if isinstance(value, bool):
            value = "yes" if value else "no"
        shown[choice.setting.name] = "" if value is None else str(value)
    for language in texts.LANGUAGES:
        if not shown.get(f"template_{language}"):
            shown[f"template_{language}"] = texts.DEFAULT_TEMPLATES[language]
    return shown


@bp.route("/settings/reminders", methods=["GET", "POST"])
@admin_only
def settings_page():
    tenant = g.tenant
    error = None
    values = _form_values(tenant)
    language = request.values.get("language", "")
    if language not in texts.LANGUAGES:
        language = _country_language(tenant)
    if request.method == "POST":
        values.update({k: v for k, v in request.form.items() if k in values})
        if request.form.get("action") == "save":
            try:
                save_clinic(tenant, service.PLUGIN, request.form)
            except ValidationError as exc:
                db.session.rollback()
                error = exc
            else:
                db.session.commit()
                flash(_("Settings saved."))
                return redirect(url_for(".settings_page", language=language), 303)
    shown = None
    if error is None:
        try:
            shown = preview(tenant, language, values[f"template_{language}"])
        except ValidationError as exc:
            error = exc
    wants_json = request.accept_mimetypes.best == "application/json"
    if request.method == "POST" and request.form.get("action") == "preview" and wants_json:
        if shown is None:
            return jsonify(
                {"error": {"code": "invalid", "message": error.message, "field": error.field}}
            ), error.status
        return jsonify({"language": language, **shown, "sms_summary": sms_summary(shown)})
    return render_template(
        "reminders/settings.html",
        values=values,
        language=language,
        languages=texts.LANGUAGES,
        variables=texts.VARIABLES,
        preview=shown,
        sms_summary=sms_summary(shown) if shown else "",
        error=error,
    ), (error.status if error else 200)


def sms_summary(shown: dict) -> str:
    """How many SMS the preview's text takes, in words."""
    sms = shown["sms"]
    return _(
        "%(count)d SMS (%(encoding)s, %(characters)d characters)",
        count=sms["segments"],
        encoding=sms["encoding"],
        characters=sms["characters"],
    )


@bp.get("/settings/reminders/templates.js")
@admin_only
def script():
    """The template editor's script: variables inserted at the cursor, the live preview."""
    return Response(
        (STATIC / "templates.js").read_bytes(),
        mimetype="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )


# --- figures ----------------------------------------------------------------------------------


def _bound(tenant, name: str, default: date) -> datetime:
    """A window's bound: a date (that day's start in the clinic) or a time with its offset."""
    text = request.args.get(name, "").strip()
    zone = ZoneInfo(tenant.timezone)
    if not text:
        return datetime.combine(default, time(0), tzinfo=zone).astimezone(UTC)
    try:
        if len(text) == 10:
            day = check.plausible(date.fromisoformat(text), name)
            return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationError(_("Give a date (YYYY-MM-DD) or a time with its offset."), name)
    return check.plausible(parsed, name).astimezone(UTC)


def _window(tenant) -> tuple[datetime, datetime]:
    today = utcnow().astimezone(ZoneInfo(tenant.timezone)).date()
    start = _bound(tenant, "from", today - timedelta(days=DEFAULT_DAYS_BACK))
    end = _bound(tenant, "to", today + timedelta(days=1))
    if end <= start:
        raise ValidationError(_("The end of the window must be after its start."), "to")
    return start, end


@bp.get("/reminders/stats")
def stats_page():
    tenant = g.tenant
    error = None
    try:
        start, end = _window(tenant)
    except ValidationError as exc:
        error = exc
        today = utcnow().astimezone(ZoneInfo(tenant.timezone)).date()
        zone = ZoneInfo(tenant.timezone)
        start = datetime.combine(today - timedelta(days=DEFAULT_DAYS_BACK), time(0), tzinfo=zone)
        end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone)
    figures = stats.compute(start, end)
    zone = ZoneInfo(tenant.timezone)
    return render_template(
        "reminders/stats.html",
        stats=figures,
        start=start.astimezone(zone).date(),
        end=end.astimezone(zone).date(),
        error=error,
    ), (error.status if error else 200)


@api_bp.get("/reminders/stats")
@api_operation(
    "Reminders' figures: sent, confirmed, no-shows with and without reminders",
    tag="Reminders",
    query={
        "from": {"type": "string", "description": "a date or a time with its offset"},
        "to": {"type": "string", "description": "a date or a time with its offset"},
    },
    answers={200: STATS},
)
def stats_api():
    start, end = _window(g.tenant)
    return jsonify(stats.compute(start, end).to_json())


# --- the patient's page -----------------------------------------------------------------------


@link_bp.route("/appointments/r/<token>", methods=["GET", "POST"])
def page(token: str):
    tenant = g.tenant
    try:
        appointment = links.read(tenant, token)
    except NotFound as exc:
        db.session.rollback()
        return render_template("patient/link_refused.html", message=exc.message), 404
    open_ = appointment.status in service.OPEN
    if request.method == "POST" and open_:
        confirm = request.form.get("answer") == "confirm"
        service.answer(tenant, appointment, confirm)
        db.session.commit()
        return redirect(url_for(".page", token=token), 303)
    patient = appointment.patient
    chosen = session.get("lang") or patient.language
    language = chosen if chosen in current_app.config["LANGUAGES"] else texts.language_of(patient)
    with force_locale(language):  # the page and its date in the patient's language
        return render_template(
            "reminders/link.html",
            appointment=appointment,
            status=appointment.status.value,
            statuses=AppointmentStatus,
            open=open_,
            practitioner=appointment.practitioner.name if appointment.practitioner else "",
            address=service.address_of(tenant, appointment),
            **texts.when(tenant, appointment.starts_at, language),
        )
