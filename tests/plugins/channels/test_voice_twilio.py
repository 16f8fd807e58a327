"""voice_twilio: calls through Twilio's Calls API, against a faithful fake Twilio Voice.

Messages go through the outbox and a real ``relais worker`` process (or the worker's job
function, where a test needs no process); the fake (tests/fakes/twilio_voice.py) takes the
call's TwiML, plays the call out as a test scripts it for the number (answered, no answer,
busy, failed) and posts its status callbacks, signed with the official ``twilio`` package, to
the app served on loopback (tests/fakes/app_server.py). What a call says is asserted on the
TwiML the fake received. Waiting is a bounded poll, never a sleep.
"""

import io
import re
import uuid
import wave
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from core.clinic import settings
from core.clinic.models import AuditEvent, Patient
from core.db import db
from core.delivery import dispatch, outbox, routing
from core.delivery.models import EarlyReceipt, Message, MessageEvent, MessageStatus
from core.delivery.providers import ACCEPTED, PERMANENT, UNREACHABLE, CircuitBreaker, Outgoing
from core.errors import ValidationError
from core.testing import ChannelContract, ContractSetup, FailureMapping, ReceiptContract
from plugins.channels.outbox.plugin import OutboxDelivery
from plugins.channels.voice_twilio import speech
from plugins.channels.voice_twilio.plugin import (
    TwilioVoice,
    parse_caller,
    parse_ring_timeout,
    parse_voices,
)
from tenants.models import ProviderRoute
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.twilio_voice import BUSY, FAILED, NO_ANSWER, FakeTwilioVoice
from tests.worlds import (
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
    start_worker,
    wait_until,
)

PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.channels.voice_twilio.plugin",
)
CALLER = "+33644630101"  # the clinic's Twilio number
LANDLINE = "+33142685300"  # a Paris landline: no SMS there
MOBILE = "+33612345678"
TEXT = (
    "Votre rendez-vous du 31/03/2026 à 9h30 est confirmé. Détails : https://demo.relais.test/r/x1"
)
SPOKEN = (
    "Votre rendez-vous du mardi trente et un mars deux mille vingt-six à neuf heures trente "
    "est confirmé. Détails"
)
RECEIPTS = "/webhooks/twilio_voice/receipts"
SID = re.compile(r"^CA[0-9a-f]{32}$")


@pytest.fixture
def voice(app_server):
    """The fake Twilio Voice, posting its callbacks to the app under test once a test
    releases them (so that what a test asserts right after a call does not race them)."""
    with FakeTwilioVoice(caller=CALLER, post=app_server.post) as fake:
        fake.hold_callbacks()
        yield fake


@pytest.fixture(autouse=True)
def healthy_providers(monkeypatch):
    """Each test starts with closed circuits (the breaker is per process)."""
    monkeypatch.setattr(routing, "breaker", CircuitBreaker())


@pytest.fixture
def clinic(plugin_app, voice):
    """A French clinic whose calls go through Twilio (the fake)."""
    tenant = make_clinic(plugin_app, "demo", "FR", plugins=("outbox", "voice_twilio"))
    configure(plugin_app, voice)
    with plugin_app.app_context(), system_scope():
        db.session.add(
            ProviderRoute(country_code="FR", channel="voice", provider="twilio_voice", priority=1)
        )
        db.session.commit()
    return tenant


def configure(app, fake, **overrides):
    values = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "caller": CALLER,
        "base_url": fake.base_url,
        **overrides,
    }
    with app.app_context(), system_scope():
        settings.save("FR", "voice_twilio", values)
        db.session.commit()


# --- helpers -------------------------------------------------------------------------------


def send(app, tenant, patient, text=TEXT, channels=("sms", "voice"), purpose="reminder"):
    with app.app_context(), tenant_scope(tenant.id):
        who = db.session.get(Patient, (tenant.id, patient.id))
        message = outbox.send(tenant, who, purpose, text, {}, list(channels))
        db.session.commit()
        return message.id


def run_worker() -> str:
    """A real ``relais worker --burst``: it takes the queued jobs, then stops."""
    running = start_worker(PLUGINS, "--burst")
    output, _ = running.communicate(timeout=60)
    assert running.returncode == 0, output
    return output


def run_job(app, tenant, message_id) -> int:
    with app.app_context(), tenant_scope(tenant.id):
        return dispatch.deliver([str(message_id)])


def state(app, tenant, message_id) -> Message:
    with app.app_context(), tenant_scope(tenant.id):
        message = db.session.get(Message, (tenant.id, message_id))
        db.session.expunge(message)
        return message


def history(app, tenant, message_id) -> list[tuple[str, str | None]]:
    with app.app_context(), tenant_scope(tenant.id):
        return [
            tuple(row)
            for row in db.session.execute(
                sa.select(MessageEvent.status, MessageEvent.detail)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.at, MessageEvent.id)
            )
        ]


def rows(app, tenant, *columns) -> list[tuple]:
    with app.app_context(), tenant_scope(tenant.id):
        return [tuple(r) for r in db.session.execute(sa.select(*columns)).all()]


def status_is(app, tenant, message_id, status):
    return lambda: (m := state(app, tenant, message_id)).status == status and m


def status_callback(sid, status="completed", **extra) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Direction": "outbound-api",
        "From": CALLER,
        "SequenceNumber": "3",
        "Timestamp": "Tue, 31 Mar 2026 07:12:09 +0000",
        "To": LANDLINE,
        **extra,
    }


def post_signed(app, params, token, signature=None):
    """POST a status callback as Twilio would, signed with the official library."""
    client = client_for(app, "demo")
    if signature is None:
        signature = RequestValidator(token).compute_signature(client.base_url + RECEIPTS, params)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return client.post(RECEIPTS, data=params, headers=headers)


# --- calls through the pipeline, with a real worker ----------------------------------------


def test_a_landline_patient_is_called_in_french_and_the_answered_call_is_delivered(
    plugin_app, clinic, voice
):
    patient = make_patient(plugin_app, clinic, phone="01 42 68 53 00")
    message_id = send(plugin_app, clinic, patient)

    run_worker()

    [call] = voice.calls
    assert (call.to, call.from_, call.timeout) == (LANDLINE, CALLER, 30)
    assert call.events == ("initiated", "ringing", "answered", "completed")
    assert call.says() == [SPOKEN, "Je répète :", SPOKEN]  # the URL is not read aloud
    assert 'language="fr-FR"' in call.twiml and 'voice="Polly.Celine"' in call.twiml
    message = state(plugin_app, clinic, message_id)
    assert (message.status, message.channel, message.provider) == (
        MessageStatus.SENT,
        "voice",
        "twilio_voice",
    )
    assert message.provider_ref == call.sid and SID.match(call.sid)

    voice.release_callbacks()
    delivered = wait_until(status_is(plugin_app, clinic, message_id, MessageStatus.DELIVERED))
    assert delivered.delivered_at is not None
    callbacks = voice.wait_for_callbacks(4)
    assert [(c.params["CallStatus"], c.status) for c in callbacks] == [
        ("initiated", 204),
        ("ringing", 204),
        ("in-progress", 204),
        ("completed", 204),
    ]
    assert callbacks[-1].params["CallDuration"] == "9"
    assert [s for s, _ in history(plugin_app, clinic, message_id)] == [
        "pending",
        "fallback",  # no SMS to a landline
        "sent",
        "delivered",
    ]


def test_an_unanswered_call_falls_back_to_the_next_channel(plugin_app, clinic, voice):
    patient = make_patient(plugin_app, clinic, phone="0142685300", email="jeanne@example.org")
    voice.outcomes[LANDLINE] = (NO_ANSWER, 0)
    message_id = send(plugin_app, clinic, patient, channels=("voice", "email"))
    run_worker()
    assert state(plugin_app, clinic, message_id).status == MessageStatus.SENT

    voice.release_callbacks()  # ringing... nobody answers: the message goes on by e-mail
    wait_until(status_is(plugin_app, clinic, message_id, MessageStatus.PENDING))
    run_worker()

    message = state(plugin_app, clinic, message_id)
    assert (message.status, message.channel, message.provider) == (
        MessageStatus.SENT,
        "email",
        "outbox_email",
    )
    assert rows(plugin_app, clinic, OutboxDelivery.channel, OutboxDelivery.recipient) == [
        ("email", "jeanne@example.org")
    ]
    assert history(plugin_app, clinic, message_id) == [
        ("pending", None),
        ("sent", "twilio_voice"),
        ("undelivered", "Twilio: no answer (SIP 487)"),
        ("fallback", "twilio_voice: Twilio: no answer (SIP 487)"),
        ("sent", "outbox_email"),
    ]
    assert len(voice.calls) == 1


def test_a_patient_who_prefers_voice_is_called_for_an_sms_message(plugin_app, clinic, voice):
    patient = make_patient(plugin_app, clinic, preferred_channel="voice")  # a mobile number
    message_id = send(
        plugin_app, clinic, patient, text="Rappel : rendez-vous demain à 14h.", channels=("sms",)
    )

    run_worker()

    message = state(plugin_app, clinic, message_id)
    assert message.channels == ["voice", "sms"]
    assert (message.status, message.provider) == (MessageStatus.SENT, "twilio_voice")
    [call] = voice.calls
    assert call.to == MOBILE
    assert call.says()[0] == "Rappel : rendez-vous demain à quatorze heures."
    assert rows(plugin_app, clinic, OutboxDelivery.id) == []  # no SMS as well


# --- what a call says ----------------------------------------------------------------------


def test_a_code_is_said_digit_by_digit_with_pauses_and_twice(plugin_app, clinic, voice):
    patient = make_patient(plugin_app, clinic, phone="0142685300")
    text = "Votre code Relais : 482913. Il expire dans 10 minutes."
    message_id = send(plugin_app, clinic, patient, text=text, purpose="otp", channels=("voice",))

    run_job(plugin_app, clinic, message_id)

    [call] = voice.calls
    digits = []
    for word in ("quatre", "huit", "deux", "neuf", "un", "trois"):
        digits += [("Say", word), ("Pause", "1")]
    assert call.steps() == [
        ("Say", "Votre code Relais :"),
        *digits,
        ("Say", "Je répète :"),
        *digits,
        ("Say", "Il expire dans dix minutes."),
    ]


def test_a_code_in_english_for_an_english_speaking_patient(plugin_app, clinic, voice):
    patient = make_patient(plugin_app, clinic, phone="0142685300", language="en")
    message_id = send(
        plugin_app, clinic, patient, text="Your code: 0571", purpose="otp", channels=("voice",)
    )
    run_job(plugin_app, clinic, message_id)
    [call] = voice.calls
    assert call.says() == ["Your code:", "zero", "five", "seven", "one", "I repeat:"] + [
        "zero",
        "five",
        "seven",
        "one",
    ]
    assert 'language="en-GB"' in call.twiml


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "fr",
            "Rendez-vous le mardi trente et un mars deux mille vingt-six à neuf heures trente, "
            "salle douze. Confirmez.",
        ),
        (
            "de",
            "Rendez-vous le Dienstag, der einunddreißigste März zweitausendsechsundzwanzig à neun "
            "Uhr dreißig, salle zwölf. Confirmez.",
        ),
        (
            "it",
            "Rendez-vous le martedì trentuno marzo duemilaventisei à le nove e trenta, salle "
            "dodici. Confirmez.",
        ),
        (
            "nl",
            "Rendez-vous le dinsdag eenendertig maart tweeduizendzesentwintig à negen uur "
            "dertig, salle twaalf. Confirmez.",
        ),
        (
            "en",
            "Rendez-vous le Tuesday, the thirty-first of March twenty twenty-six à nine thirty "
            "a.m., salle twelve. Confirmez.",
        ),
        (
            "es",
            "Rendez-vous le Tuesday, the thirty-first of March twenty twenty-six à nine "
            "thirty a.m., salle twelve. Confirmez.",
        ),  # no Spanish voice: English
    ],
)
def test_dates_times_and_numbers_are_said_in_the_patients_language(language, expected):
    text = "Rendez-vous le 31/03/2026 à 09:30, salle 12. Confirmez : https://x.example/c?id=1."
    assert speech.spoken(text, language) == expected


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        (
            "Le 2026-04-01 à 9 h 30",
            "fr",
            "Le mercredi premier avril deux mille vingt-six à neuf heures trente",
        ),
        (
            "Am 01.04.2026 um 13 Uhr",
            "de",
            "Am Mittwoch, der erste April zweitausendsechsundzwanzig um dreizehn Uhr",
        ),
        ("À 21h, 1 h ou 14h05", "fr", "À vingt et une heures, une heure ou quatorze heures cinq"),
        ("At 9:05 pm or 12 am", "en", "At nine oh five p.m. or twelve o'clock a.m."),
        (
            "Température 37,5 ; dose 2,05 ml",
            "fr",
            "Température trente-sept virgule cinq ; dose deux virgule zéro cinq ml",
        ),
        ("Dose 2.5 ml", "en", "Dose two point five ml"),
        ("Dossier 1234567", "fr", "Dossier un deux trois quatre cinq six sept"),
        (
            "Appelez le 01 42 68 53 00",
            "fr",
            "Appelez le zéro un quarante-deux soixante-huit cinquante-trois zéro zéro",
        ),
        ("Salle 0", "it", "Salle zero"),
        ("Voir (www.relais.example/a) ou https://b.example.", "fr", "Voir ou."),
    ],
)
def test_speech_rules(text, language, expected):
    assert speech.spoken(text, language) == expected


def test_a_long_message_is_refused_before_twilio(plugin_app, clinic, voice):
    patient = make_patient(plugin_app, clinic, phone="0142685300")
    message_id = send(plugin_app, clinic, patient, text="Bonjour. " * 250, channels=("voice",))
    run_job(plugin_app, clinic, message_id)
    assert voice.requests == []
    assert state(plugin_app, clinic, message_id).status == MessageStatus.FAILED
    assert any(
        "too long to be read in a call" in (d or "")
        for _, d in history(plugin_app, clinic, message_id)
    )


# --- call outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        (BUSY, "Twilio: busy (SIP 486)"),
        (FAILED, "Twilio: the call failed: Twilio's carriers could not connect it (SIP 404)"),
        (NO_ANSWER, "Twilio: no answer (SIP 487)"),
    ],
)
def test_a_call_nobody_heard_is_undelivered_when_the_plan_has_no_next_channel(
    plugin_app, clinic, voice, outcome, error
):
    patient = make_patient(plugin_app, clinic, phone="0142685300")
    voice.outcomes[LANDLINE] = (outcome, 0)
    message_id = send(plugin_app, clinic, patient, channels=("voice",))
    run_job(plugin_app, clinic, message_id)

    voice.release_callbacks()

    message = wait_until(status_is(plugin_app, clinic, message_id, MessageStatus.UNDELIVERED))
    assert message.delivered_at is None
    assert ("undelivered", error) in history(plugin_app, clinic, message_id)


def test_statuses_map_to_receipts():
    voice = TwilioVoice(settings={})
    sid = "CA" + "1" * 32

    def read(status, **extra):
        [receipt] = voice.parse_receipts({}, b"", status_callback(sid, status, **extra))
        return receipt.status, receipt.error

    assert read("completed", CallDuration="12") == ("delivered", None)
    assert read("completed", CallDuration="0") == (
        "undelivered",
        "the call was answered and hung up at once",
    )
    assert read("canceled") == (
        "undelivered",
        "Twilio: the call was cancelled before it was answered",
    )
    for intermediate in ("queued", "initiated", "ringing", "in-progress"):
        assert read(intermediate) == ("sent", None)
    [receipt] = voice.parse_receipts({}, b"", status_callback(sid))
    assert receipt.at == datetime(2026, 3, 31, 7, 12, 9, tzinfo=UTC)  # Twilio's Timestamp
    for missing in ("CallSid", "CallStatus"):
        with pytest.raises(ValueError, match="CallSid and CallStatus"):
            params = status_callback(sid)
            del params[missing]
            voice.parse_receipts({}, b"", params)


@pytest.mark.parametrize("forgery", ["missing", "wrong token", "tampered status"])
def test_a_forged_callback_is_refused_and_changes_nothing(plugin_app, clinic, voice, forgery):
    patient = make_patient(plugin_app, clinic, phone="0142685300")
    message_id = send(plugin_app, clinic, patient, channels=("voice",))
    run_job(plugin_app, clinic, message_id)
    sid = state(plugin_app, clinic, message_id).provider_ref
    params, token, signature = status_callback(sid, "no-answer"), voice.auth_token, None
    if forgery == "missing":
        signature = ""
    elif forgery == "wrong token":
        token = "f" * 32
    else:
        signature = RequestValidator(token).compute_signature(
            f"https://demo.relais.test{RECEIPTS}", {**params, "CallStatus": "completed"}
        )

    answer = post_signed(plugin_app, params, token, signature)

    assert answer.status_code == 401
    assert state(plugin_app, clinic, message_id).status == MessageStatus.SENT
    assert rows(plugin_app, clinic, EarlyReceipt.id) == []
    assert [s for s, _ in history(plugin_app, clinic, message_id)] == ["pending", "sent"]


def test_a_signed_callback_is_taken(plugin_app, clinic, voice):
    patient = make_patient(plugin_app, clinic, phone="0142685300")
    message_id = send(plugin_app, clinic, patient, channels=("voice",))
    run_job(plugin_app, clinic, message_id)
    sid = state(plugin_app, clinic, message_id).provider_ref

    answer = post_signed(plugin_app, status_callback(sid, CallDuration="14"), voice.auth_token)

    assert answer.status_code == 204
    message = state(plugin_app, clinic, message_id)
    assert message.status == MessageStatus.DELIVERED
    assert message.delivered_at == datetime(2026, 3, 31, 7, 12, 9, tzinfo=UTC)


def test_a_lost_answer_is_recovered_without_calling_twice(plugin_app, clinic, voice, monkeypatch):
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.3)
    voice.time_out_next(1, seconds=3, created=True)  # Twilio placed the call; its answer is lost
    patient = make_patient(plugin_app, clinic, phone="0142685300")
    message_id = send(plugin_app, clinic, patient, channels=("voice",))

    run_job(plugin_app, clinic, message_id)

    message = state(plugin_app, clinic, message_id)
    assert message.status == MessageStatus.SENT
    assert message.provider_ref == voice.calls[0].sid
    assert len(voice.requests) == 1 and voice.duplicates() == {}


# --- the provider against the fake ---------------------------------------------------------


def provider(fake) -> TwilioVoice:
    return TwilioVoice(
        settings={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "caller": CALLER,
            "base_url": fake.base_url,
        }
    )


def outgoing(text="Bonjour", to=LANDLINE, purpose="transactional", language="fr") -> Outgoing:
    return Outgoing(
        uuid.uuid4(), uuid.uuid4(), "voice", to, text, purpose=purpose, language=language
    )


def test_lookup_finds_a_call_still_queued_and_only_since(voice):
    twilio_voice = provider(voice)
    since = datetime.now(UTC)
    mine = outgoing()
    [placed] = twilio_voice.try_send([mine], 5)  # callbacks held: queued, not dialled yet

    assert voice.calls[0].start_time is None
    found = twilio_voice.lookup([mine, outgoing("Autre")], since, 5)
    assert found == [replace(placed, looked_up=True)] and placed.outcome == ACCEPTED
    assert twilio_voice.lookup([mine], since + timedelta(minutes=5), 5) == []


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(21215, PERMANENT), (21210, PERMANENT), (13224, UNREACHABLE), (21211, UNREACHABLE)],
)
def test_twilios_refusals_map_to_what_the_core_does_next(voice, code, outcome):
    voice.fail_next(1, status=400, code=code, message="refused")
    [result] = provider(voice).try_send([outgoing()], 5)
    assert result.outcome == outcome and f"error {code}" in result.error


def test_a_caller_that_is_not_the_accounts_is_permanent(voice):
    twilio_voice = TwilioVoice(settings={**provider(voice).settings, "caller": "+33644630199"})
    [result] = twilio_voice.try_send([outgoing()], 5)
    assert result.outcome == PERMANENT and "21210" in result.error
    assert voice.calls == []


def test_settings_are_checked_with_a_sentence_for_the_operator(plugin_app):
    assert parse_caller("+33 6 44 63 01 01") == CALLER
    assert parse_ring_timeout("25") == 25
    assert parse_voices(" fr=Polly.Lea-Neural, de=Polly.Vicki") == (
        "fr=Polly.Lea-Neural de=Polly.Vicki"
    )
    with plugin_app.test_request_context():
        for parse, text in [
            (parse_caller, "0644630101"),  # international format only
            (parse_caller, "CLINIQUE"),  # no sender ID: calls come from a number
            (parse_ring_timeout, "2"),
            (parse_ring_timeout, "ten"),
            (parse_voices, "es=Polly.Lucia"),
            (parse_voices, "fr=<Say>"),
        ]:
            with pytest.raises(ValueError, match=r"\w+ \w+"):
                parse(text)
        with system_scope(), pytest.raises(ValidationError) as refused:
            settings.save("FR", "voice_twilio", {"caller": "CLINIQUE"})
        assert refused.value.field == "caller"


def test_the_voices_setting_chooses_the_voice_of_a_language(voice):
    twilio_voice = TwilioVoice(
        settings={**provider(voice).settings, "voices": "fr=Polly.Lea-Neural"}
    )
    assert 'voice="Polly.Lea-Neural"' in twilio_voice.twiml(outgoing())
    assert 'voice="Polly.Vicki"' in twilio_voice.twiml(outgoing(language="de"))


# --- the staff's preview -------------------------------------------------------------------


@pytest.fixture
def staff(plugin_app, clinic):
    client = client_for(plugin_app, "demo")
    log_in(client, make_staff(plugin_app, clinic, "secretary"))
    return client


def duration(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as audio:
        return audio.getnframes() / audio.getframerate()


def test_staff_listen_to_a_message_before_it_is_sent(plugin_app, clinic, staff):
    patient = make_patient(plugin_app, clinic)
    page = staff.get(f"/patients/{patient.id}")
    assert "data-voice-preview" in page.text and 'data-language="fr"' in page.text
    token = csrf_token(staff, f"/patients/{patient.id}")

    answer = staff.post(
        "/voice/preview.wav",
        data={
            "text": "Votre rendez-vous du 31/03/2026 à 9h30.",
            "language": "fr",
            "csrf_token": token,
        },
    )

    assert answer.status_code == 200 and answer.mimetype == "audio/wav"
    assert answer.headers["Cache-Control"] == "no-store"
    # The sentence, a 2 s pause, "Je répète :" and the sentence again: some seconds of speech.
    assert 5 < duration(answer.data) < 20


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"text": "  ", "language": "fr"}, "text"),
        ({"text": "a" * 1601, "language": "fr"}, "text"),
        ({"text": "Bonjour", "language": "es"}, "language"),
        ({"text": "Bonjour"}, "language"),
    ],
)
def test_a_preview_of_bad_input_is_a_422_naming_the_field(plugin_app, clinic, staff, form, field):
    token = csrf_token(staff, "/patients/new")
    answer = staff.post("/voice/preview.wav", data={**form, "csrf_token": token})
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == field and answer.json["error"]["message"]


def test_a_preview_needs_the_forms_csrf_token_and_a_login(plugin_app, clinic, staff):
    form = {"text": "Bonjour", "language": "fr"}
    assert staff.post("/voice/preview.wav", data=form).status_code == 400  # no CSRF token
    anonymous = client_for(plugin_app, "demo")
    token = csrf_token(anonymous, "/login")
    answer = anonymous.post("/voice/preview.wav", data={**form, "csrf_token": token})
    assert answer.status_code == 302 and "/login" in answer.location


def test_staff_hear_a_sent_message_as_the_call_said_it(plugin_app, clinic, staff, voice):
    patient = make_patient(plugin_app, clinic, phone="0142685300")
    message_id = send(plugin_app, clinic, patient, text="Rappel : demain à 9h.")

    page = staff.get(f"/messages/{message_id}")
    assert f'src="/voice/messages/{message_id}.wav"' in page.text
    answer = staff.get(f"/voice/messages/{message_id}.wav")

    assert answer.status_code == 200 and answer.mimetype == "audio/wav"
    assert 2 < duration(answer.data) < 20
    reads = rows(plugin_app, clinic, AuditEvent.action, AuditEvent.object_id)
    assert reads.count(("message.read", message_id)) == 2  # the page, then its audio


def test_a_message_of_another_clinic_cannot_be_heard(plugin_app, clinic, staff):
    other = make_clinic(plugin_app, "other", "FR", plugins=("outbox", "voice_twilio"))
    message_id = send(plugin_app, other, make_patient(plugin_app, other), text="Secret")
    assert staff.get(f"/voice/messages/{message_id}.wav").status_code == 404
    assert staff.get(f"/voice/messages/{uuid.uuid4()}.wav").status_code == 404


def test_no_listen_button_nor_player_where_voice_is_not_enabled(plugin_app, clinic, staff):
    with plugin_app.app_context(), system_scope():
        from tenants import provisioning

        provisioning.set_country_plugin("FR", "voice_twilio", False)
        db.session.commit()
    patient = make_patient(plugin_app, clinic)
    message_id = send(plugin_app, clinic, patient, channels=("sms", "voice"))
    assert "data-voice-preview" not in staff.get(f"/patients/{patient.id}").text
    assert ".wav" not in staff.get(f"/messages/{message_id}").text
    assert staff.get(f"/voice/messages/{message_id}.wav").status_code == 404


# --- the channel contract (core.testing) ---------------------------------------------------


class TestTwilioVoiceContract(ChannelContract, FailureMapping, ReceiptContract):
    """A call keeps no reference of ours: what the fake took is told by number and TwiML."""

    @pytest.fixture
    def contract(self):
        with FakeTwilioVoice(caller=CALLER) as fake:
            ours = {}

            class Recorded(TwilioVoice):  # remembers which of our messages each TwiML was
                def try_send(self, batch, timeout):
                    ours.update({(o.to, self.twiml(o)): str(o.message_id) for o in batch})
                    return super().try_send(batch, timeout)

            failures = {
                "temporary": lambda: fake.fail_next(1, 503, message="Service Unavailable"),
                "permanent": lambda: fake.fail_next(1, 401, 20003, "Authenticate"),
                "unreachable": lambda: fake.unreachable.update({LANDLINE: 13224}),
                "timeout": lambda: fake.time_out_next(1, seconds=2, created=False),
            }

            def receipt(result, status):
                if status == "delivered":
                    params = status_callback(result.provider_ref, "completed", CallDuration="9")
                else:
                    params = status_callback(result.provider_ref, "no-answer")
                url = f"https://demo.relais.test{RECEIPTS}"
                headers = {"X-Twilio-Signature": fake.signature(url, params)}
                return url, headers, urlencode(params).encode(), params

            def tamper(hook):
                url, headers, _, form = hook
                forged = {**form, "CallStatus": "busy"}
                return url, headers, urlencode(forged).encode(), forged

            yield ContractSetup(
                provider=Recorded(
                    settings={
                        "account_sid": fake.account_sid,
                        "auth_token": fake.auth_token,
                        "caller": CALLER,
                        "base_url": fake.base_url,
                    }
                ),
                to=LANDLINE,
                fail=lambda kind: failures[kind](),
                received=lambda: [ours[(c.to, c.twiml)] for c in fake.calls],
                receipt=receipt,
                tamper=tamper,
                timeout=0.5,
            )
            assert fake.duplicates() == {}
