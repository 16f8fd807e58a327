"""Pages and JSON routes of sign-up and login by code, for patients and new staff.

Patients, on their clinic's subdomain: ``/me/login`` (a phone number, then the code), then
``/me/signup`` when the number has no account yet. The session keeps only the id of the
proving challenge: the proof is this clinic's, lasts 30 minutes and opens one sign-up
(:func:`codes.proved_phone`). The same steps as JSON under
``/me/api/``: JSON bodies only, so a form on another site cannot post them (no CSRF token
needed), and the session cookie carries the proved number from one step to the next.

New staff: after their password, ``/login/phone`` proves their phone by a code before the
core's authenticator-app enrolment (hook ``relais_activation_step``).
"""

from pathlib import Path

from babel import Locale
from flask import (
    Blueprint,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _

from core.plugin_api import (
    LANGUAGES,
    DomainError,
    Patient,
    api_operation,
    api_schema,
    csrf,
    current_patient,
    db,
    limiter,
    log_in_patient,
    login_limit,
    masked_phone,
    pending_account,
    plugin_setting,
    utcnow,
)
from plugins.features.otp import accounts, codes

bp = Blueprint("otp", __name__, template_folder="templates")
bp.relais_public = True  # patients and staff without a session yet: each view checks its own
api_bp = Blueprint("otp_api", __name__, url_prefix="/me/api")
api_bp.relais_public = True
csrf.exempt(api_bp)  # JSON bodies only (see the module's docstring)

_CHALLENGE = {"type": "string", "format": "uuid"}
CHALLENGE = api_schema(
    "CodeChallenge",
    {
        "type": "object",
        "required": ["challenge", "channel", "expires_in", "resend_in"],
        "properties": {
            "challenge": _CHALLENGE,
            "channel": {"type": "string", "enum": ["sms", "voice"]},
            "expires_in": {"type": "integer", "description": "seconds"},
            "resend_in": {"type": "integer", "description": "seconds"},
        },
    },
)

STATIC = Path(__file__).parent / "static"


def _per_address() -> str:
    return plugin_setting(g.tenant, "otp", "codes_per_address")


# Per client address, over every route that sends a code (pages and JSON together).
code_limit = limiter.shared_limit(_per_address, scope="otp-codes", methods=["POST"])


# --- patients: pages ------------------------------------------------------------------------


@bp.get("/me/login/wait.js")
def wait_script():
    """The code page's script (a file: the Content-Security-Policy runs no inline script)."""
    return send_from_directory(STATIC, "wait.js", mimetype="text/javascript")


@bp.route("/me/login", methods=["GET", "POST"])
@code_limit
def login():
    """A phone number; a code goes to it by SMS (a call for a landline, or if asked)."""
    if current_patient() is not None:
        return redirect(url_for("patient.home"))
    if request.method == "GET":
        return render_template("otp/login.html")
    phone = request.form.get("phone", "")
    try:
        _send(phone, voice=request.form.get("channel") == "voice")
    except DomainError as exc:
        _end(exc)
        return render_template("otp/login.html", error=exc, phone=phone), exc.status
    db.session.commit()
    return redirect(url_for(".code"))


@bp.route("/me/login/code", methods=["GET", "POST"])
@login_limit
def code():
    """The code's page: enter it, or ask for a new one or a call."""
    challenge = codes.find(session.get("otp_challenge"))
    if challenge is None:
        return redirect(url_for(".login"))
    if request.method == "POST":
        try:
            proved = codes.verify(g.tenant, challenge.id, request.form.get("code"), "patient")
        except DomainError as exc:
            _end(exc)
            return _code_page(challenge, exc), exc.status
        target = _after_proof(proved)
        db.session.commit()
        return redirect(target)
    return _code_page(challenge)


@bp.post("/me/login/again")
@code_limit
def again():
    """A new code to the same number: by SMS again, or by a call ("Call me instead")."""
    challenge = codes.find(session.get("otp_challenge"))
    if challenge is None:
        return redirect(url_for(".login"))
    try:
        _send(challenge.phone, voice=request.form.get("channel") == "voice")
    except DomainError as exc:
        _end(exc)
        return _code_page(challenge, exc), exc.status
    db.session.commit()
    return redirect(url_for(".code"))


@bp.route("/me/signup", methods=["GET", "POST"])
def signup():
    """Who the patient is, once their number is proved; then their session opens."""
    phone = _proved_phone(spend=request.method == "POST")
    if phone is None:
        return redirect(url_for(".login"))
    if request.method == "GET":
        return render_template("otp/signup.html", form={}, languages=_languages())
    form = {k: request.form.get(k, "").strip() for k in _SIGN_UP_FIELDS}
    try:
        patient, _linked = accounts.sign_up(g.tenant, phone, form)
    except DomainError as exc:
        db.session.rollback()  # the proof is not spent: the form can be corrected
        page = render_template("otp/signup.html", form=form, error=exc, languages=_languages())
        return page, exc.status
    log_in_patient(patient)
    db.session.commit()
    return redirect(url_for("patient.home"))


_SIGN_UP_FIELDS = ("first_name", "last_name", "birth_date", "email", "language")


def _languages() -> dict[str, str]:
    """The languages messages can be written in, each named in the page's language."""
    here = get_locale()
    return {code: Locale.parse(code).get_display_name(here).capitalize() for code in LANGUAGES}


def _code_page(challenge, error: DomainError | None = None, template: str = "otp/code.html"):
    """The page that takes a code: a patient's, or a new staff member's (``template``)."""
    return render_template(
        template,
        error=error,
        phone=masked_phone(challenge.phone),
        channel=challenge.channel,
        wait=codes.seconds_before_resend(challenge),
    )


# --- patients: JSON -------------------------------------------------------------------------


@api_bp.post("/code")
@api_operation(
    "Send a login or sign-up code to a phone",
    tag="Patient login",
    public=True,
    body={
        "type": "object",
        "required": ["phone"],
        "properties": {
            "phone": {"type": "string", "examples": ["+33612345678"]},
            "channel": {"type": "string", "enum": ["sms", "voice"]},
        },
    },
    answers={202: CHALLENGE},
    errors=[415, 429],
)
@code_limit
def api_code():
    """``{"phone", "channel": "sms"|"voice"}`` → 202 ``{"challenge", "channel",
    "expires_in", "resend_in"}``, the same whether the number has an account or not."""
    body = _json()
    try:
        challenge = _send(body.get("phone"), voice=body.get("channel") == "voice")
    except codes.Refusal as exc:
        _end(exc)
        raise
    db.session.commit()
    return jsonify(_challenge_json(challenge)), 202


@api_bp.post("/code/verify")
@api_operation(
    "Prove the phone with its code: opens the patient's session",
    tag="Patient login",
    public=True,
    body={
        "type": "object",
        "required": ["challenge", "code"],
        "properties": {"challenge": _CHALLENGE, "code": {"type": "string"}},
    },
    answers={
        200: {
            "type": "object",
            "required": ["next"],
            "properties": {"next": {"type": "string", "enum": ["home", "sign_up"]}},
        }
    },
    errors=[401, 415, 429],
)
@login_limit
def api_verify():
    """``{"challenge", "code"}`` → 200 ``{"next": "home"}`` with the patient's session open,
    or ``{"next": "sign_up"}`` when the number has no account yet."""
    body = _json()
    try:
        proved = codes.verify(g.tenant, body.get("challenge"), body.get("code"), "patient")
    except codes.Refusal as exc:
        _end(exc)
        raise
    target = _after_proof(proved)
    db.session.commit()
    return jsonify({"next": "home" if target == url_for("patient.home") else "sign_up"})


@api_bp.post("/signup")
@api_operation(
    "Create the patient's account after a proved phone",
    tag="Patient login",
    public=True,
    body={
        "type": "object",
        "required": ["first_name", "last_name"],
        "properties": {
            "first_name": {"type": "string"},
            "last_name": {"type": "string"},
            "birth_date": {"type": "string", "format": "date"},
            "email": {"type": "string", "format": "email"},
            "language": {"type": "string", "enum": list(LANGUAGES)},
        },
    },
    answers={
        201: {
            "type": "object",
            "required": ["patient", "linked"],
            "properties": {
                "patient": {
                    "type": "object",
                    "required": ["id", "first_name", "last_name", "language"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "first_name": {"type": "string"},
                        "last_name": {"type": "string"},
                        "language": {"type": "string"},
                    },
                },
                "linked": {"type": "boolean"},
            },
        }
    },
    errors=[401, 415],
)
def api_signup():
    """``{"first_name", "last_name", "birth_date", "email", "language"}`` after a proved
    number → 201 ``{"patient": {...}, "linked": true|false}``, the session open."""
    body = _json()
    phone = _proved_phone(spend=True)
    if phone is None:
        return _error(401, "unauthorized", _("Prove your phone number with a code first."))
    patient, linked = accounts.sign_up(g.tenant, phone, body)
    log_in_patient(patient)
    db.session.commit()
    return jsonify({"patient": _patient_json(patient), "linked": linked}), 201


class NotJson(DomainError):
    status = 415
    code = "unsupported_media_type"


def _json() -> dict:
    body = request.get_json(silent=True)
    if not request.is_json or not isinstance(body, dict):
        raise NotJson(_("Send a JSON object."), "body")
    return body


def _error(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status


def _challenge_json(challenge) -> dict:
    return {
        "challenge": str(challenge.id),
        "channel": challenge.channel,
        "expires_in": int(codes.VALID_FOR.total_seconds()),
        "resend_in": codes.seconds_before_resend(challenge),
    }


def _patient_json(patient: Patient) -> dict:
    return {
        "id": str(patient.id),
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "language": patient.language,
    }


# --- patients: shared steps -----------------------------------------------------------------


def _send(phone, voice: bool):
    number = codes.parse_number(phone, g.tenant.country_code)
    challenge = codes.request_code(g.tenant, number, "patient", voice=voice)
    session["otp_challenge"] = str(challenge.id)
    return challenge


def _after_proof(proved) -> str:
    """Where a proved number leads: the account's session, else the sign-up form (the
    session keeps the challenge's id, the proof; the caller commits)."""
    session.pop("otp_challenge", None)
    patient = accounts.account_for(proved.phone)
    if patient is not None:
        log_in_patient(patient)
        return url_for("patient.home")
    session["otp_proved"] = str(proved.id)
    return url_for("otp.signup")


def _end(exc: DomainError) -> None:
    """A refused request keeps only what its refusal recorded (a wrong try, an audit)."""
    if isinstance(exc, codes.Refusal):
        db.session.commit()
    else:
        db.session.rollback()


def _proved_phone(spend: bool) -> str | None:
    """The number this session proved on this clinic, if its proof is still good; with
    ``spend``, the proof is used up (one sign-up per code)."""
    return codes.proved_phone(g.tenant, session.get("otp_proved"), spend=spend)


# --- new staff: their phone before their authenticator app ----------------------------------


@bp.route("/login/phone", methods=["GET", "POST"])
@code_limit
def staff_phone():
    """A new staff member's phone (the one their admin entered, or theirs to type)."""
    account = pending_account()
    if account is None or account.phone_verified_at is not None:
        return redirect(url_for("auth.login"))
    phone = request.form.get("phone", account.phone or "")
    if request.method == "GET":
        return render_template("otp/staff_phone.html", phone=phone)
    try:
        number = codes.parse_number(phone, g.tenant.country_code)
        challenge = codes.request_code(
            g.tenant,
            number,
            "staff",
            voice=request.form.get("channel") == "voice",
            user_id=account.id,
        )
    except DomainError as exc:
        _end(exc)
        return render_template("otp/staff_phone.html", phone=phone, error=exc), exc.status
    db.session.commit()
    session["otp_challenge"] = str(challenge.id)
    return redirect(url_for(".staff_code"))


@bp.route("/login/phone/code", methods=["GET", "POST"])
@login_limit
def staff_code():
    """The code sent to the new staff member's phone; then the authenticator app."""
    account = pending_account()
    challenge = codes.find(session.get("otp_challenge"))
    if account is None or challenge is None or challenge.user_id != account.id:
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return _code_page(challenge, template="otp/staff_code.html")
    try:
        proved = codes.verify(g.tenant, challenge.id, request.form.get("code"), "staff")
    except DomainError as exc:
        _end(exc)
        return _code_page(challenge, exc, "otp/staff_code.html"), exc.status
    account.phone, account.phone_verified_at = proved.phone, utcnow()
    db.session.commit()
    session.pop("otp_challenge", None)
    return redirect(url_for("auth.enrol"))


def activation_step(user) -> str | None:
    """The page a new staff member goes through before enrolling their app, if any."""
    return url_for("otp.staff_phone") if user.phone_verified_at is None else None
