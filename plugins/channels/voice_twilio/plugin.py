"""Twilio voice: calls that read a message aloud, through Twilio's Programmable Voice API.

Sending is one ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` per message, form-encoded
``To``, ``From`` (the clinic's voice-capable Twilio number), ``Twiml`` (what the call says,
built here: see :mod:`speech`), ``Timeout`` (how long it rings) and ``StatusCallback`` with
the events ``initiated ringing answered completed``; HTTP Basic authentication. Twilio's call
``sid`` is the provider reference. The call says the message in the patient's language, pauses,
says "I repeat:" and the message again; a code (purpose ``otp``) is spelt digit by digit.

Twilio's Calls API has no idempotency key. A call whose outcome is unknown is settled with the
list API: a call from our number to the same number, created since the attempt, answers for
one of ours at most (:meth:`TwilioVoice.lookup`).

Status callbacks come to ``https://<clinic>.<domain>/webhooks/twilio_voice/receipts``, signed
with ``X-Twilio-Signature`` exactly as Twilio's messaging callbacks are: both channels check
it with the account code they share (:mod:`plugins.channels.twilio_api`). A call answered
and completed is delivered; busy, unanswered, failed or cancelled calls are undelivered, and
the message goes on by the next channel of its plan.

Staff can hear a message before it leaves: ``POST /voice/preview.wav`` renders it with
espeak-ng (:mod:`audio`), and the patient page's form has a Listen button for it.
"""

import re
import uuid
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import phonenumbers
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from core.plugin_api import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    NotFound,
    Outgoing,
    Receipt,
    Result,
    Setting,
    ValidationError,
    db,
    hookimpl,
    read_message,
    utcnow,
)
from plugins.channels.twilio_api import (
    SKEW,
    Answer,
    TwilioAccount,
    account_settings,
    base_url_setting,
    json_of,
)
from plugins.channels.voice_twilio import audio, speech

kind = "channel"
name = _l("Twilio voice calls")
description = _l("Twilio voice: calls that read messages aloud, for landlines and on request.")

MAX_TWIML = 4000  # characters: Twilio's limit on the Twiml parameter
MAX_PREVIEW = 1600  # characters of text a preview takes (a long SMS)
RING_TIMEOUT = 30  # seconds it rings by default (Twilio's default, 60, reaches voicemail)
EVENTS = ("initiated", "ringing", "answered", "completed")
# Amazon Polly's standard voices through Twilio: the basic voices speak neither it nor nl.
VOICES = {
    "fr": "Polly.Celine",
    "de": "Polly.Vicki",
    "it": "Polly.Carla",
    "nl": "Polly.Lotte",
    "en": "Polly.Amy",
}

# Twilio's error codes (https://www.twilio.com/docs/api/errors) that decide an outcome.
CODES = {
    20003: (PERMANENT, "the account SID or auth token is wrong"),
    20429: (TEMPORARY, "too many requests"),
    21210: (PERMANENT, "the caller number is not a number of this Twilio account"),
    21212: (PERMANENT, "the caller number is not valid"),
    21215: (PERMANENT, "calls to this country are not allowed (Geo Permissions)"),
    13227: (PERMANENT, "calls to this country are not allowed (Geo Permissions)"),
    21219: (PERMANENT, "a trial account calls verified numbers only"),
    21211: (UNREACHABLE, "invalid 'To' number"),
    21214: (UNREACHABLE, "the number cannot be reached"),
    21216: (UNREACHABLE, "Twilio does not call this number"),
    21217: (UNREACHABLE, "the number does not appear to be valid"),
    13223: (UNREACHABLE, "the number's format is not valid"),
    13224: (UNREACHABLE, "Twilio does not call this number, or it is not valid"),
    13225: (UNREACHABLE, "the number is restricted"),
}
# A call's final status when nobody heard it, for staff.
NOT_HEARD = {
    "no-answer": "no answer",
    "busy": "busy",
    "failed": "the call failed: Twilio's carriers could not connect it",
    "canceled": "the call was cancelled before it was answered",
}

_CALL_SID = re.compile(r"^CA[0-9a-f]{32}$", re.IGNORECASE)
_VOICE = re.compile(r"^[A-Za-z]+(\.[A-Za-z0-9-]+)*$")


class TwilioVoice(TwilioAccount):
    """Twilio's Calls API, one call per message."""

    name, channel = "twilio_voice", "voice"
    resource, listed, since_filter = "Calls.json", "calls", "StartTime>"
    plugin, required = "voice_twilio", ("account_sid", "auth_token", "caller")
    batch_size = 1

    def preview(self, text: str, subject: str | None, language: str) -> dict[str, str]:
        """The words the call says (then says again after "I repeat:")."""
        return {"text": speech.spoken(text, language)}

    # --- sending ---------------------------------------------------------------------------

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        self.check_configured()
        return [self._call(message, timeout) for message in batch]

    def twiml(self, message: Outgoing) -> str:
        """The TwiML of the call for ``message``: ``<Say>`` and ``<Pause>`` of its script."""
        lang = speech.language_of(message.language)
        voice = {**VOICES, **voices_by_language(self.settings.get("voices"))}[lang]
        say = {"language": speech.LOCALES[lang], "voice": voice}
        response = ET.Element("Response")
        for step in speech.script(message.text, lang, message.purpose):
            if isinstance(step, speech.Pause):
                ET.SubElement(response, "Pause", length=str(step.seconds))
            else:
                ET.SubElement(response, "Say", say).text = step.text
        return ET.tostring(response, encoding="unicode")

    def _call(self, message: Outgoing, timeout: float) -> Result:
        twiml = self.twiml(message)
        if len(twiml) > MAX_TWIML:
            return Result(
                message.message_id,
                PERMANENT,
                error=f"the message is too long to be read in a call ({len(twiml)} characters "
                f"of TwiML, Twilio takes {MAX_TWIML}): shorten it",
            )
        form = {
            "To": message.to,
            "From": self.settings["caller"],
            "Twiml": twiml,
            "Timeout": str(self.settings.get("ring_timeout") or RING_TIMEOUT),
        }
        if message.callback_url:
            form |= {
                "StatusCallback": message.callback_url,
                "StatusCallbackMethod": "POST",
                "StatusCallbackEvent": list(EVENTS),  # one parameter per event
            }
        return self.create(message, form, timeout, _answer)

    # --- recovering unknown outcomes -------------------------------------------------------

    def matches(self, item: dict, message: Outgoing, earliest: datetime) -> bool:
        """A call Twilio lists is ours when it went from our number to the message's number,
        created at or after ``earliest``.

        A call keeps no reference of ours and Twilio does not give back its TwiML. Two lists
        are read per number (:meth:`TwilioAccount.lookup`): the calls started since the day of
        ``since``, then its latest calls unfiltered, because a call still queued at Twilio has
        no start time and a ``StartTime`` filter would hide exactly it.
        """
        if item.get("direction") != "outbound-api" or item.get("to") != message.to:
            return False
        if item.get("from") != self.settings["caller"]:
            return False
        try:
            created = parsedate_to_datetime(item.get("date_created") or "")
        except (TypeError, ValueError):
            return False
        return created.tzinfo is not None and created >= earliest

    # --- webhooks --------------------------------------------------------------------------

    def parse_receipts(self, headers: dict[str, str], body: bytes, form: dict) -> list[Receipt]:
        """A call's status callback: ``CallSid``, ``CallStatus``, ``CallDuration`` at the end.

        ``completed`` means the call was answered (by a person, or a voicemail) and has ended:
        delivered, unless it lasted 0 seconds (hung up at once: nobody heard the message).
        ``busy``, ``no-answer``, ``failed`` and ``canceled`` are undelivered; ``queued``,
        ``initiated``, ``ringing`` and ``in-progress`` (answered) are intermediate reports.
        The time is the callback's ``Timestamp`` (RFC 2822, UTC), else its arrival.
        """
        sid = form.get("CallSid") or ""
        status = (form.get("CallStatus") or "").strip().lower()
        if not _CALL_SID.match(sid) or not status:
            raise ValueError("a status callback needs CallSid and CallStatus")
        ours, error = "sent", None
        if status == "completed":
            duration = (form.get("CallDuration") or "").strip()
            if duration == "0":
                ours, error = "undelivered", "the call was answered and hung up at once"
            else:
                ours = "delivered"
        elif status in NOT_HEARD:
            ours, error = "undelivered", f"Twilio: {NOT_HEARD[status]}"
            if form.get("SipResponseCode"):
                error += f" (SIP {form['SipResponseCode']})"
        at = _event_time(form.get("Timestamp"))
        return [Receipt(status=ours, at=at, provider_ref=sid, error=error)]


def _answer(message: Outgoing, response: Answer) -> Result:
    """Map Twilio's answer to a create request onto an outcome."""
    payload = json_of(response)
    status = response.status_code
    if status in (200, 201) and payload.get("sid"):
        return Result(message.message_id, ACCEPTED, provider_ref=payload["sid"])
    code = payload.get("code") if isinstance(payload.get("code"), int) else None
    outcome, meaning = CODES.get(code, (None, None))
    if outcome is None:  # 401, 403 and refusals we do not know: permanent (the next provider)
        outcome = TEMPORARY if status == 429 or status >= 500 or status < 400 else PERMANENT
    detail = meaning or payload.get("message") or response.reason_phrase
    error = f"Twilio HTTP {status}" + (f" error {code}" if code else "") + f": {detail}"
    return Result(message.message_id, outcome, error=error[:200])


def _event_time(stamp: str | None) -> datetime:
    """When a call event happened: Twilio's ``Timestamp`` when it is plausible, else now."""
    now = utcnow()
    try:
        at = parsedate_to_datetime(stamp or "")
    except (TypeError, ValueError):
        return now
    if at.tzinfo is None or at > now + SKEW:
        return now
    return at


# --- the staff's preview ---------------------------------------------------------------------

bp = Blueprint("voice_twilio", __name__, template_folder="templates")
STATIC = Path(__file__).parent / "static"


@bp.get("/voice/listen.js")
def listen_script():
    """The script of the Listen button (a plain file: no route argument to guard)."""
    return send_from_directory(STATIC, "listen.js", mimetype="text/javascript")


@bp.post("/voice/preview.wav")
def preview():
    """A text as a call to the patient would say it, as audio/wav (CSRF-protected form:
    ``text`` and ``language``); 422 JSON naming the field when either is not acceptable."""
    text = (request.form.get("text") or "").strip()
    language = request.form.get("language") or ""
    try:
        if not text:
            raise ValidationError(_("Write the message to listen to."), "text")
        if len(text) > MAX_PREVIEW:
            raise ValidationError(
                _("A message is read at most %(n)d characters long.", n=MAX_PREVIEW), "text"
            )
        if language not in speech.LANGUAGES:
            raise ValidationError(
                _("Choose one of: %(v)s.", v=", ".join(speech.LANGUAGES)), "language"
            )
    except ValidationError as exc:
        return jsonify(exc.as_json()), exc.status
    return _wav(speech.script(text, language), language)


@bp.get("/voice/messages/<uuid:message_id>.wav")
def message_audio(message_id: uuid.UUID):
    """A message of this clinic as its call says it (its read audited like the message page)."""
    message, patient = read_message(message_id)
    db.session.commit()  # the audit of the read
    if message.content.get("confidential") or message.content.get("erased"):
        raise NotFound(_("No such message."))  # a secret for the patient alone, or erased
    language = speech.language_of(patient.language if patient else None)
    return _wav(speech.script(message.content["text"], language, message.purpose), language)


def _wav(steps: list, language: str):
    try:
        wav = audio.render_wav(steps, language)
    except audio.PreviewError as exc:
        current_app.logger.warning("voice preview unavailable: %s", exc)  # no text in it
        error = {"code": "unavailable", "message": _("The audio preview is unavailable.")}
        return jsonify({"error": error}), 503
    return Response(wav, mimetype="audio/wav", headers={"Cache-Control": "no-store"})


def listen_button(source: str, language: str) -> Markup:
    """A Listen button for a form's message field (id ``source``): it plays the preview."""
    html = render_template("voice_twilio/listen.html", source=source, language=language)
    return Markup(html)  # noqa: S704 - rendered by an autoescaping template


def message_player(message) -> Markup:
    """An audio player of a message as its call says it, if voice is in its plan."""
    if "voice" not in (message.channels or ()):
        return Markup("")
    url = url_for("voice_twilio.message_audio", message_id=message.id)
    html = render_template("voice_twilio/player.html", url=url)
    return Markup(html)  # noqa: S704 - rendered by an autoescaping template


# --- settings ----------------------------------------------------------------------------------


def parse_caller(text: str) -> str:
    """A voice-capable Twilio number, in international format (E.164 once parsed)."""
    text = text.strip()
    try:
        number = phonenumbers.parse(text) if text.startswith("+") else None
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValueError(_("Enter a Twilio number in international format, e.g. +33644630101."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_ring_timeout(text: str) -> int:
    """Seconds a call rings before Twilio gives up (5 to 600, as Twilio takes)."""
    if not text.strip().isdigit() or not 5 <= int(text) <= 600:
        raise ValueError(_("Enter a number of seconds from 5 to 600."))
    return int(text)


def parse_voices(text: str) -> str:
    """Twilio voices by language, e.g. ``fr=Polly.Lea-Neural, de=Polly.Vicki-Neural``: kept
    as text (``fr=Polly.Lea-Neural de=Polly.Vicki-Neural``), which the console shows back."""
    voices = voices_by_language(text)
    return " ".join(f"{lang}={voice}" for lang, voice in voices.items())


def voices_by_language(text: str | None) -> dict[str, str]:
    """The voices of the ``voices`` setting, by language. :raises ValueError: if malformed."""
    voices = {}
    for pair in filter(None, re.split(r"[\s,;]+", (text or "").strip())):
        lang, _sep, voice = pair.partition("=")
        if lang not in speech.LANGUAGES or not _VOICE.match(voice):
            raise ValueError(
                _(
                    "Write language=voice pairs, e.g. fr=Polly.Lea-Neural; languages: %(v)s.",
                    v=", ".join(speech.LANGUAGES),
                )
            )
        voices[lang] = voice
    return voices


# --- hooks -------------------------------------------------------------------------------------


@hookimpl
def relais_register_channels():
    return [TwilioVoice]


@hookimpl
def relais_register_blueprints():
    return [bp]


@hookimpl
def relais_template_variables():
    return {"voice_listen_button": listen_button, "voice_message_player": message_player}


@hookimpl
def relais_plugin_settings():
    return [
        *account_settings(),
        Setting(
            "caller",
            _l("Caller number"),
            parse=parse_caller,
            help=_l("A voice-capable number of your Twilio account, e.g. +33644630101."),
        ),
        Setting(
            "ring_timeout",
            _l("Ring time (seconds)"),
            default=RING_TIMEOUT,
            parse=parse_ring_timeout,
            help=_l("How long a call rings before it counts as unanswered."),
        ),
        Setting(
            "voices",
            _l("Voices"),
            default="",
            parse=parse_voices,
            help=_l(
                "Optional Twilio voices by language, e.g. fr=Polly.Lea-Neural; "
                "Amazon Polly's standard voices otherwise."
            ),
        ),
        base_url_setting(),
    ]
