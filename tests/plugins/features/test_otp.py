"""Sign-up and login by code, through the pages and the JSON routes, on the real database.

Codes are read where the patient would find them: the text of the message the outbox holds
for their number (tests/plugins/features/test_otp_worker.py reads them from the loopback
providers instead). Time moves with ``time_machine``, never with sleeps.
"""

import logging
import re
import uuid
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
import time_machine
from flask_babel import force_locale, gettext, ngettext
from markupsafe import escape
from sqlalchemy import event

from core.clinic import settings
from core.clinic.models import AuditEvent, Patient, User
from core.crypto import unseal
from core.db import db, utcnow
from core.delivery import dispatch
from core.delivery.models import Message, MessageStatus
from plugins.features.otp.models import Challenge
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import (
    PASSWORD,
    SERVER,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

MOBILE = "+33612345678"
LANDLINE = "+33142685300"  # a Paris landline
BIRTH = "1984-05-02"
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=("fr", "outbox", "otp"))


def in_english(app, clinic):
    """A patient's browser or app on the clinic's subdomain, in English."""
    client = client_for(app, clinic.slug)
    client.post("/language", data={"lang": "en", "csrf_token": csrf_token(client, "/me/login")})
    return client


@pytest.fixture
def visitor(app, clinic):
    return in_english(app, clinic)


def ask(client, phone=MOBILE, **extra):
    return client.post("/me/api/code", json={"phone": phone, **extra})


def verify(client, challenge, code):
    return client.post("/me/api/code/verify", json={"challenge": challenge, "code": code})


def messages_to(app, clinic, phone=MOBILE) -> list[Message]:
    with app.app_context(), tenant_scope(clinic.id):
        # The address is encrypted (a different token each time): compared once decrypted.
        every = db.session.scalars(sa.select(Message).order_by(Message.created_at)).all()
        found = [message for message in every if message.address == phone]
        for message in found:
            db.session.expunge(message)
        return found


def last_code(app, clinic, phone=MOBILE) -> str:
    return CODE.search(messages_to(app, clinic, phone)[-1].content["text"])[1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def audit_trail(app, clinic) -> list[tuple[str, str, str | None]]:
    with app.app_context(), tenant_scope(clinic.id):
        return [
            tuple(row)
            for row in db.session.execute(
                sa.select(AuditEvent.action, AuditEvent.actor, AuditEvent.detail)
                .where(AuditEvent.action.like("otp.%"))
                .order_by(AuditEvent.at, AuditEvent.id)
            )
        ]


def sign_up(client, **fields):
    data = {
        "first_name": "Inès",
        "last_name": "Moreau",
        "birth_date": BIRTH,
        "email": "ines@example.org",
        "language": "fr",
        **fields,
    }
    return client.post("/me/api/signup", json=data)


# --- sign-up and login ----------------------------------------------------------------------


def test_a_patient_signs_up_with_a_code_and_logs_in_with_another(app, clinic, visitor):
    asked = ask(visitor)
    assert asked.status_code == 202
    assert asked.json["channel"] == "sms"
    assert asked.json["expires_in"] == 300 and asked.json["resend_in"] == 30
    [message] = messages_to(app, clinic)
    assert message.purpose == "otp" and message.patient_id is None
    assert message.channels == ["sms", "voice"]  # an SMS that cannot be delivered: a call
    assert message.content["confidential"] is True
    assert abs(message.expires_at - message.created_at - timedelta(minutes=5)).total_seconds() < 1
    assert message.status == MessageStatus.PENDING  # never deferred, even by the French rules
    code = CODE.search(message.content["text"])[1]
    assert message.content["text"] == (
        f"Your code is {code} (Clinic demo). It expires in 5 minutes. Never share it."
    )

    proved = verify(visitor, asked.json["challenge"], code)
    assert proved.status_code == 200 and proved.json == {"next": "sign_up"}
    assert visitor.get("/me/").status_code == 401  # no account yet

    created = sign_up(visitor)
    assert created.status_code == 201
    assert created.json["linked"] is False
    assert created.json["patient"]["first_name"] == "Inès"
    home = visitor.get("/me/")
    assert home.status_code == 200 and "Inès Moreau" in home.text
    with app.app_context(), tenant_scope(clinic.id):
        patient = db.session.scalar(sa.select(Patient))
        assert patient.phone == MOBILE and str(patient.birth_date) == BIRTH
        assert patient.review_needed and patient.signed_up_at is not None
        assert patient.language == "fr" and patient.email == "ines@example.org"

    visitor.post("/me/logout", data={"csrf_token": csrf_token(visitor, "/me/")})
    assert visitor.get("/me/").status_code == 401
    with time_machine.travel(utcnow() + timedelta(seconds=31)):
        again = ask(visitor)
        assert again.status_code == 202
        logged = verify(visitor, again.json["challenge"], last_code(app, clinic))
        assert logged.json == {"next": "home"}
        assert "Inès Moreau" in visitor.get("/me/").text


def test_a_sign_up_joins_the_clinics_record_with_the_same_phone_and_birth_date(
    app, clinic, visitor
):
    known = make_patient(app, clinic, first_name="Inès", last_name="Moreau", birth_date=BIRTH)
    other = make_patient(
        app, clinic, first_name="Paul", last_name="Moreau", birth_date="2015-01-09"
    )
    asked = ask(visitor)
    verify(visitor, asked.json["challenge"], last_code(app, clinic))

    created = sign_up(visitor, first_name="Ines", email="")
    assert created.status_code == 201
    assert created.json == {
        "patient": {
            "id": str(known.id),
            "first_name": "Inès",
            "last_name": "Moreau",
            "language": "fr",
        },
        "linked": True,
    }
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 2
        linked = db.session.get(Patient, (clinic.id, known.id))
        assert linked.signed_up_at is not None and not linked.review_needed
        assert db.session.get(Patient, (clinic.id, other.id)).signed_up_at is None


def test_a_sign_up_with_another_birth_date_makes_a_record_for_staff_to_check(app, clinic, visitor):
    make_patient(app, clinic, first_name="Inès", last_name="Moreau", birth_date="1990-01-01")
    asked = ask(visitor)
    verify(visitor, asked.json["challenge"], last_code(app, clinic))
    created = sign_up(visitor)
    assert created.json["linked"] is False
    with app.app_context(), tenant_scope(clinic.id):
        flagged = db.session.scalars(sa.select(Patient).where(Patient.review_needed)).all()
        assert [p.birth_date.isoformat() for p in flagged] == [BIRTH]


def test_the_sign_up_form_needs_a_proved_number_and_names_bad_fields(app, clinic, visitor):
    refused = sign_up(visitor)
    assert refused.status_code == 401
    assert visitor.get("/me/signup").headers["Location"].endswith("/me/login")

    verify(visitor, ask(visitor).json["challenge"], last_code(app, clinic))
    for fields, field in (
        ({"first_name": ""}, "first_name"),
        ({"birth_date": "02/05/1984"}, "birth_date"),
        ({"birth_date": ""}, "birth_date"),
        ({"email": "ines@"}, "email"),
        ({"language": "xx"}, "language"),
        ({"phone": "+33600000000"}, "phone"),
    ):
        answer = sign_up(visitor, **fields)
        assert answer.status_code == 422, fields
        assert answer.json["error"]["field"] == field
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 0


def test_the_proved_number_expires_after_30_minutes(app, clinic, visitor):
    verify(visitor, ask(visitor).json["challenge"], last_code(app, clinic))
    with time_machine.travel(utcnow() + timedelta(minutes=31)):
        assert sign_up(visitor).status_code == 401


# --- what a code is -------------------------------------------------------------------------


def test_a_landline_gets_a_call_and_a_mobile_may_ask_for_one(app, clinic, visitor):
    landline = ask(visitor, LANDLINE)
    assert landline.status_code == 202 and landline.json["channel"] == "voice"
    assert messages_to(app, clinic, LANDLINE)[0].channels == ["voice"]

    called = ask(visitor, MOBILE, channel="voice")
    assert called.json["channel"] == "voice"
    assert messages_to(app, clinic, MOBILE)[0].channels == ["voice"]


def test_only_a_hash_of_the_code_is_stored_and_it_is_never_logged(app, clinic, visitor, caplog):
    caplog.set_level(logging.DEBUG)
    asked = ask(visitor)
    code = last_code(app, clinic)
    verify(visitor, asked.json["challenge"], wrong(code))
    verify(visitor, asked.json["challenge"], code)
    with app.app_context(), tenant_scope(clinic.id):
        challenge = db.session.get(Challenge, (clinic.id, uuid.UUID(asked.json["challenge"])))
        assert len(challenge.code_digest) == 64 and code not in challenge.code_digest
        stored = db.session.execute(
            sa.text("SELECT code_digest, phone, phone_digest FROM otp_challenges")
        ).one()
    assert not any(code in str(value) for value in stored)
    assert MOBILE not in stored.phone  # encrypted
    assert not any(code in record.getMessage() for record in caplog.records)
    assert all(code not in (detail or "") for _, _, detail in audit_trail(app, clinic))


def test_a_code_that_could_not_leave_in_time_expires_at_the_pipeline(app, clinic, visitor):
    ask(visitor)
    [message] = messages_to(app, clinic)
    with (
        time_machine.travel(utcnow() + timedelta(minutes=5, seconds=1)),
        app.app_context(),
        tenant_scope(clinic.id),
    ):
        dispatch.deliver([str(message.id)])
    [message] = messages_to(app, clinic)
    assert message.status == MessageStatus.EXPIRED and message.provider is None


# --- abuse ----------------------------------------------------------------------------------


def test_five_wrong_codes_void_the_code(app, clinic, visitor):
    asked = ask(visitor)
    code = last_code(app, clinic)
    for left in (4, 3, 2, 1):
        answer = verify(visitor, asked.json["challenge"], wrong(code))
        assert answer.status_code == 401
        assert answer.json["error"] == {
            "code": "code_refused",
            "field": "code",
            "message": f"This code is not right. You can try {left} more "
            + ("time." if left == 1 else "times."),
        }
    fifth = verify(visitor, asked.json["challenge"], wrong(code))
    assert fifth.json["error"]["message"] == (
        "Too many wrong codes: this one no longer works. Ask for a new one."
    )
    right = verify(visitor, asked.json["challenge"], code)
    assert right.status_code == 401 and "no longer works" in right.json["error"]["message"]
    assert visitor.get("/me/").status_code == 401
    trail = audit_trail(app, clinic)
    assert [action for action, _, _ in trail] == ["otp.sent"] + ["otp.failed"] * 4 + ["otp.blocked"]
    assert {actor for _, actor, _ in trail} == {"visitor"}
    assert trail[0][2] == "sms to •• •• 78"


def test_an_expired_code_is_refused(app, clinic, visitor):
    asked = ask(visitor)
    code = last_code(app, clinic)
    with time_machine.travel(utcnow() + timedelta(minutes=5, seconds=1)):
        late = verify(visitor, asked.json["challenge"], code)
    assert late.status_code == 401
    assert late.json["error"]["message"] == "This code has expired. Ask for a new one."


def test_a_used_code_is_refused_the_second_time(app, clinic, visitor):
    asked = ask(visitor)
    code = last_code(app, clinic)
    assert verify(visitor, asked.json["challenge"], code).status_code == 200
    replay = in_english(app, clinic)
    again = verify(replay, asked.json["challenge"], code)
    assert again.status_code == 401
    assert again.json["error"]["field"] == "code"
    assert "already used" in again.json["error"]["message"]


def test_a_new_code_waits_30_seconds_and_5_an_hour(app, clinic, visitor):
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        assert ask(visitor).status_code == 202
        clock.shift(10)
        soon = ask(visitor, channel="voice")
        assert soon.status_code == 429
        assert soon.headers["Retry-After"] == "20"
        assert soon.json["error"] == {
            "code": "rate_limited",
            "field": "phone",
            "message": "A code was just sent. Wait 20 seconds before asking for a new one.",
            "retry_after": 20,
        }
        assert len(messages_to(app, clinic)) == 1  # nothing sent
        for _ in range(4):
            clock.shift(31)
            assert ask(visitor).status_code == 202
        clock.shift(31)
        sixth = ask(visitor)
        assert sixth.status_code == 429
        assert sixth.json["error"]["message"].startswith(
            "Too many codes were sent to this number. Try again in "
        )
        assert ask(visitor, "+33687654321").status_code == 202  # another number is not held
        clock.shift(timedelta(hours=1))
        assert ask(visitor).status_code == 202
    assert len(messages_to(app, clinic)) == 6
    actions = [action for action, _, _ in audit_trail(app, clinic)]
    assert actions.count("otp.refused") == 1 and actions.count("otp.blocked") == 1


def test_one_address_may_ask_for_so_many_codes(app, clinic, visitor):
    with app.app_context(), system_scope():
        settings.save("FR", "otp", {"codes_per_address": "3 per minute"})
        db.session.commit()
    for n in range(3):
        assert ask(visitor, f"+3361234560{n}").status_code == 202
    refused = ask(visitor, "+33612345609")
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "too_many_requests"
    assert len(messages_to(app, clinic, "+33612345609")) == 0


def test_known_and_unknown_numbers_get_the_same_answer_after_the_same_work(app, clinic, visitor):
    """Same status, same fields, and the very same SQL statements, whether the number has
    an account or not: neither the answer nor its timing can tell them apart."""
    make_patient(app, clinic, phone=MOBILE)
    with app.app_context(), tenant_scope(clinic.id):
        db.session.execute(sa.update(Patient).values(signed_up_at=utcnow()))
        db.session.commit()

    def observed(phone):
        statements = []

        def keep(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", keep)
        try:
            answer = ask(visitor, phone)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        return answer, statements

    observed("+33611112222")  # the process remembers the configuration it read: both alike
    known, known_sql = observed(MOBILE)
    unknown, unknown_sql = observed("+33687654321")
    assert known.status_code == unknown.status_code == 202
    assert known.json.keys() == unknown.json.keys()
    assert {k: v for k, v in known.json.items() if k != "challenge"} == {
        k: v for k, v in unknown.json.items() if k != "challenge"
    }
    assert known_sql == unknown_sql
    assert not any("patients" in statement for statement in known_sql)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"phone": ""}, "phone", "Enter your phone number."),
        (
            {"phone": "06 12"},
            "phone",
            "This is not a valid phone number. Check it, e.g. 06 12 34 56 78.",
        ),
        (
            {"phone": "hello"},
            "phone",
            "This is not a valid phone number. Check it, e.g. 06 12 34 56 78.",
        ),
        ({"phone": "+32470123456"}, "phone", "Enter a phone number of France."),
        (
            {"phone": "0899123456"},  # premium rate
            "phone",
            "Codes cannot go to premium-rate or service numbers. "
            "Enter your mobile or home phone number.",
        ),
        (
            {"phone": "0800123456"},  # toll free
            "phone",
            "Codes cannot go to premium-rate or service numbers. "
            "Enter your mobile or home phone number.",
        ),
    ],
)
def test_a_number_codes_cannot_go_to_is_refused_naming_the_field(
    app, clinic, visitor, body, field, message
):
    answer = visitor.post("/me/api/code", json=body)
    assert answer.status_code == 422
    assert answer.json["error"] == {"code": "invalid", "field": field, "message": message}
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Message)) == 0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "Enter the code you received."),
        ("12ab56", "The code has 6 digits."),
        ("12345", "The code has 6 digits."),
    ],
)
def test_an_empty_or_non_numeric_code_is_refused_naming_the_field(
    app, clinic, visitor, code, message
):
    asked = ask(visitor)
    answer = verify(visitor, asked.json["challenge"], code)
    assert answer.status_code == 422
    assert answer.json["error"] == {"code": "invalid", "field": "code", "message": message}
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(Challenge.wrong_tries)) == 0  # not a try


def test_a_code_for_no_challenge_and_a_form_post_are_refused(app, clinic, visitor):
    answer = verify(visitor, "not-a-challenge", "123456")
    assert answer.status_code == 422 and answer.json["error"]["field"] == "challenge"
    answer = verify(visitor, str(uuid.uuid4()), "123456")
    assert answer.status_code == 422 and answer.json["error"]["field"] == "challenge"
    form = visitor.post("/me/api/code", data={"phone": MOBILE})  # what another site can post
    assert form.status_code == 415
    assert messages_to(app, clinic) == []


def test_a_challenge_of_another_clinic_is_none_here(app, clinic, visitor):
    other = make_clinic(app, "other", plugins=("fr", "outbox", "otp"))
    there = client_for(app, other.slug)
    asked = ask(there)
    code = last_code(app, other)
    answer = verify(visitor, asked.json["challenge"], code)
    assert answer.status_code == 422 and answer.json["error"]["field"] == "challenge"


def test_without_the_plugin_the_routes_are_not_there(app):
    bare = make_clinic(app, "bare", plugins=("fr",))
    client = client_for(app, bare.slug)
    assert client.post("/me/api/code", json={"phone": MOBILE}).status_code == 404
    assert client.get("/me/login").status_code == 404


# --- the pages ------------------------------------------------------------------------------


def test_the_pages_sign_a_patient_up(app, clinic):
    browser = client_for(app, clinic.slug)
    signed_out = browser.get("/me/")
    assert signed_out.status_code == 401
    with app.test_request_context(), force_locale("fr"):
        way_in = gettext("Sign up or log in with your phone")
        refused = gettext("The code has 6 digits.")
        wrong_code = ngettext(
            "This code is not right. You can try %(num)d more time.",
            "This code is not right. You can try %(num)d more times.",
            4,
        )
    assert way_in in signed_out.text  # relais_patient_sign_in_links
    assert 'href="/me/login"' in signed_out.text

    token = csrf_token(browser, "/me/login")
    sent = browser.post("/me/login", data={"phone": "06 12 34 56 78", "csrf_token": token})
    assert sent.headers["Location"].endswith("/me/login/code")
    page = browser.get("/me/login/code")
    assert "•• •• 78" in page.text and 'autocomplete="one-time-code"' in page.text
    assert 'data-wait="30"' in page.text

    code = last_code(app, clinic)
    bad = browser.post("/me/login/code", data={"code": "12ab56", "csrf_token": token})
    assert bad.status_code == 422 and refused in bad.text and 'aria-invalid="true"' in bad.text
    bad = browser.post("/me/login/code", data={"code": wrong(code), "csrf_token": token})
    assert bad.status_code == 401 and str(escape(wrong_code)) in bad.text

    proved = browser.post(
        "/me/login/code", data={"code": f"{code[:3]} {code[3:]}", "csrf_token": token}
    )
    assert proved.headers["Location"].endswith("/me/signup")
    form = {
        "first_name": "Inès",
        "last_name": "Moreau",
        "birth_date": "1984-13-02",
        "email": "",
        "language": "fr",
        "csrf_token": token,
    }
    invalid = browser.post("/me/signup", data=form)
    assert invalid.status_code == 422 and 'id="e-birth_date"' in invalid.text
    done = browser.post("/me/signup", data={**form, "birth_date": BIRTH})
    assert done.headers["Location"].endswith("/me/")
    assert "Inès Moreau" in browser.get("/me/").text


def test_the_pages_refuse_a_form_without_its_csrf_token(app, clinic):
    browser = client_for(app, clinic.slug)
    answer = browser.post("/me/login", data={"phone": MOBILE})
    assert answer.status_code == 400
    assert messages_to(app, clinic) == []


def test_call_me_instead_from_the_code_page(app, clinic):
    browser = client_for(app, clinic.slug)
    token = csrf_token(browser, "/me/login")
    browser.post("/me/login", data={"phone": MOBILE, "csrf_token": token})
    too_soon = browser.post("/me/login/again", data={"channel": "voice", "csrf_token": token})
    assert too_soon.status_code == 429
    with time_machine.travel(utcnow() + timedelta(seconds=31)):
        called = browser.post("/me/login/again", data={"channel": "voice", "csrf_token": token})
    assert called.headers["Location"].endswith("/me/login/code")
    assert [m.channels for m in messages_to(app, clinic)] == [["sms", "voice"], ["voice"]]


def test_the_number_a_code_goes_to_is_stored_encrypted_in_the_outbox(app, clinic, visitor):
    """docs/otp.md: the number is stored encrypted, in the challenge and in the message."""
    ask(visitor)
    with app.app_context(), tenant_scope(clinic.id):
        [stored] = db.session.execute(sa.text("SELECT address FROM messages")).scalars()
        assert MOBILE.removeprefix("+") not in stored and "612345678" not in stored
        assert unseal(stored) == MOBILE
        [message] = db.session.scalars(sa.select(Message)).all()
        assert message.address == MOBILE  # the dispatcher reads it in clear
    with app.app_context(), tenant_scope(clinic.id):
        dispatch.deliver([str(message.id)])
    [sent] = messages_to(app, clinic)  # found by its number once decrypted
    assert sent.status == MessageStatus.SENT and sent.provider == "outbox_sms"


def test_the_message_log_shows_a_code_without_its_text(app, clinic, visitor):
    ask(visitor)
    admin = make_staff(app, clinic, "admin")
    staff = client_for(app, clinic.slug)
    log_in(staff, admin)
    [message] = messages_to(app, clinic)
    listing = staff.get("/messages")
    assert "•• •• 78" in listing.text
    shown = staff.get(f"/messages/{message.id}")
    assert shown.status_code == 200
    assert last_code(app, clinic) not in shown.text


# --- new staff ------------------------------------------------------------------------------


def test_a_new_staff_member_proves_their_phone_then_enrols_their_app(app, clinic):
    """relais_activation_step: the password, the phone's code, then the authenticator app."""
    admin = make_staff(app, clinic, "admin")
    boss = client_for(app, clinic.slug)
    log_in(boss, admin)
    created = boss.post(
        "/staff",
        data={
            "name": "Sofia Lopez",
            "email": "sofia@demo.example",
            "role": "secretary",
            "phone": "07 81 22 33 44",
            "password": PASSWORD,
            "csrf_token": csrf_token(boss, "/staff"),
        },
    )
    assert created.status_code == 302

    sofia = client_for(app, clinic.slug)
    token = csrf_token(sofia, "/login")
    step = sofia.post(
        "/login", data={"email": "sofia@demo.example", "password": PASSWORD, "csrf_token": token}
    )
    assert step.headers["Location"].endswith("/login/phone")
    assert sofia.get("/login/enrol").headers["Location"].endswith("/login/phone")  # no skipping
    assert "+33781223344" in sofia.get("/login/phone").text  # what their admin entered
    token = csrf_token(sofia, "/login/phone")  # a new session since the password
    sent = sofia.post("/login/phone", data={"phone": "07 81 22 33 44", "csrf_token": token})
    assert sent.headers["Location"].endswith("/login/phone/code")
    code = last_code(app, clinic, "+33781223344")
    bad = sofia.post("/login/phone/code", data={"code": wrong(code), "csrf_token": token})
    assert bad.status_code == 401
    enrol = sofia.post("/login/phone/code", data={"code": code, "csrf_token": token})
    assert enrol.headers["Location"].endswith("/login/enrol")
    page = sofia.get("/login/enrol")
    assert page.status_code == 200
    with app.app_context(), tenant_scope(clinic.id):
        user = db.session.scalar(sa.select(User).where(User.email == "sofia@demo.example"))
        assert user.phone == "+33781223344" and user.phone_verified_at is not None
        secret = user.totp_secret
        trail = [row[:2] for row in audit_trail(app, clinic)]
    assert trail == [
        ("otp.sent", f"user:{user.id}"),
        ("otp.failed", f"user:{user.id}"),
        ("otp.verified", f"user:{user.id}"),
    ]
    done = sofia.post("/login/enrol", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token})
    assert done.status_code == 302
    assert sofia.get("/").status_code == 200


def test_a_staff_code_opens_no_patient_session_and_the_reverse(app, clinic, visitor):
    asked = ask(visitor)
    code = last_code(app, clinic)
    staff = client_for(app, clinic.slug)
    assert staff.get("/login/phone/code").headers["Location"].endswith("/login")
    with app.app_context(), tenant_scope(clinic.id):
        challenge = db.session.get(Challenge, (clinic.id, uuid.UUID(asked.json["challenge"])))
        assert challenge.purpose == "patient" and challenge.user_id is None
    # A patient's challenge verified as a staff one is no challenge at all.
    with app.app_context(), tenant_scope(clinic.id):
        from core.errors import ValidationError
        from plugins.features.otp import codes

        with pytest.raises(ValidationError):
            codes.verify(clinic, asked.json["challenge"], code, "staff")


# --- the proof of a number ------------------------------------------------------------------


def copy_session(app, source, slug: str):
    """Another browser (on ``slug``'s host) holding a copy of ``source``'s session cookie."""
    cookie = source.get_cookie("session", domain=source.base_url.split("//")[1])
    target = client_for(app, slug)
    target.set_cookie("session", cookie.value, domain=f"{slug}.{SERVER}")
    return target


def test_a_number_proved_on_one_clinic_signs_up_on_no_other(app, clinic, visitor):
    other = make_clinic(app, "other", plugins=("fr", "outbox", "otp"))
    proved = verify(visitor, ask(visitor).json["challenge"], last_code(app, clinic))
    assert proved.json == {"next": "sign_up"}

    elsewhere = copy_session(app, visitor, other.slug)
    refused = sign_up(elsewhere)
    assert refused.status_code == 401
    assert elsewhere.get("/me/signup").headers["Location"].endswith("/me/login")
    with app.app_context(), tenant_scope(other.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 0
    # Clinic B's own code is what opens an account there.
    asked = ask(elsewhere)
    assert verify(elsewhere, asked.json["challenge"], last_code(app, other)).status_code == 200
    assert sign_up(elsewhere).status_code == 201


def test_a_proof_opens_one_sign_up_and_an_old_one_signs_in_no_more(app, clinic, visitor):
    verify(visitor, ask(visitor).json["challenge"], last_code(app, clinic))
    kept = copy_session(app, visitor, clinic.slug)  # the cookie as it was after the proof
    assert sign_up(visitor).status_code == 201
    visitor.post("/me/logout", data={"csrf_token": csrf_token(visitor, "/me/")})

    again = sign_up(kept)
    assert again.status_code == 401
    assert kept.get("/me/").status_code == 401


def test_a_copy_of_a_proof_signs_up_no_second_account(app, clinic, visitor):
    """Two sign-ups with one proof: the first spends it (a conditional UPDATE)."""
    verify(visitor, ask(visitor).json["challenge"], last_code(app, clinic))
    twin = copy_session(app, visitor, clinic.slug)
    assert sign_up(visitor).status_code == 201
    assert sign_up(twin, first_name="Autre").status_code == 401
