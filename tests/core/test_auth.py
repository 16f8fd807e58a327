"""Staff log in with a password and an authenticator-app code, enrolled at first login."""

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pyotp
import sqlalchemy as sa
import time_machine

from core.clinic.models import User
from core.db import db, utcnow
from core.sessions import LoginSession
from tenants.scoping import tenant_scope
from tests.fakes.app_server import AppServer
from tests.worlds import PASSWORD, SERVER, client_for, csrf_token, log_in, make_staff


def post_password(client, email, password=PASSWORD):
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client, "/login")},
    )


def post_code(client, code, path="/login/code"):
    return client.post(path, data={"code": code, "csrf_token": csrf_token(client, path)})


def stored_user(app, tenant, user_id) -> User:
    with app.app_context(), tenant_scope(tenant.id):
        user = db.session.scalar(sa.select(User).where(User.id == user_id))
        db.session.expunge(user)
        return user


def test_first_login_enrols_the_authenticator_app(app, clinic_fr):
    account = make_staff(app, clinic_fr, "admin", enrolled=False)
    client = client_for(app, clinic_fr.slug)
    response = post_password(client, account.email)
    assert response.headers["Location"].endswith("/login/enrol")

    page = client.get("/login/enrol")
    assert "<svg" in page.text  # the QR code, drawn in the page
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    assert post_code(client, "000000", "/login/enrol").status_code == 401
    assert post_code(client, pyotp.TOTP(secret).now(), "/login/enrol").status_code == 302

    assert client.get("/").status_code == 200
    assert stored_user(app, clinic_fr, account.id).totp_enrolled


def test_the_qr_code_holds_the_provisioning_uri(app, clinic_fr):
    from core.auth import provisioning_uri

    account = make_staff(app, clinic_fr, "admin")
    user = stored_user(app, clinic_fr, account.id)
    with app.app_context():
        uri = provisioning_uri(user, issuer="Relais · Clinic demo")
    assert uri.startswith("otpauth://totp/")
    assert f"secret={account.totp_secret}" in uri


def test_a_password_alone_opens_nothing(app, clinic_fr):
    account = make_staff(app, clinic_fr, "admin")
    client = client_for(app, clinic_fr.slug)
    assert post_password(client, account.email).headers["Location"].endswith("/login/code")
    page = client.get("/patients")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_wrong_password_and_unknown_email_get_the_same_answer(app, clinic_fr):
    account = make_staff(app, clinic_fr, "admin")
    client = client_for(app, clinic_fr.slug)
    wrong = post_password(client, account.email, "not the password")
    unknown = post_password(client, "nobody@demo.example")
    assert wrong.status_code == unknown.status_code == 401
    # A French clinic answers in French (see test_i18n for the English side).
    assert "Adresse e-mail ou mot de passe incorrect." in wrong.text
    assert "Adresse e-mail ou mot de passe incorrect." in unknown.text


def test_a_code_is_accepted_once(app, clinic_fr):
    account = make_staff(app, clinic_fr, "admin")
    client = client_for(app, clinic_fr.slug)
    log_in(client, account)
    code = pyotp.TOTP(account.totp_secret).now()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    post_password(client, account.email)
    replay = post_code(client, code)
    assert replay.status_code == 401
    assert client.get("/patients").status_code == 302


def test_repeated_failures_lock_the_account(app, clinic_fr):
    account = make_staff(app, clinic_fr, "admin")
    client = client_for(app, clinic_fr.slug)
    for _ in range(app.config["LOGIN_MAX_ATTEMPTS"]):
        assert post_password(client, account.email, "guess guess guess").status_code == 401
    locked = post_password(client, account.email)  # even the right password
    assert locked.status_code == 423
    assert "ce compte est verrouillé" in locked.text

    minutes = app.config["LOGIN_LOCKOUT_MINUTES"]
    with time_machine.travel(utcnow() + timedelta(minutes=minutes, seconds=1)):  # it expires
        assert post_password(client, account.email).status_code == 302


def test_an_unknown_address_locks_like_a_known_one_with_the_same_answers(app, clinic_fr):
    """No enumeration: an address without an account answers what one with an account does,
    wrong password after wrong password, then locked."""
    account = make_staff(app, clinic_fr, "admin")
    client = client_for(app, clinic_fr.slug)
    known, unknown = [], []
    for _ in range(app.config["LOGIN_MAX_ATTEMPTS"] + 2):
        known.append(post_password(client, account.email, "guess guess guess"))
        unknown.append(post_password(client, "nobody@demo.example", "guess guess guess"))
    assert [r.status_code for r in known] == [r.status_code for r in unknown]
    assert [r.status_code for r in unknown] == [401] * 5 + [423] * 2
    for mine, theirs in zip(known, unknown, strict=True):
        assert page_words(mine, account.email) == page_words(theirs, "nobody@demo.example")


def page_words(page, email: str) -> str:
    """A login page less what differs between any two answers: the e-mail typed back in its
    field, and the (time-stamped) CSRF token."""
    return re.sub(r'name="csrf_token" value="[^"]+"', "", page.text.replace(email, ""))


def test_wrong_codes_count_towards_the_lock(app, clinic_fr):
    account = make_staff(app, clinic_fr, "admin")
    client = client_for(app, clinic_fr.slug)
    post_password(client, account.email)
    for _ in range(app.config["LOGIN_MAX_ATTEMPTS"]):
        post_code(client, "123456")
    assert post_code(client, pyotp.TOTP(account.totp_secret).now()).status_code == 423


def test_login_attempts_are_rate_limited_per_address(app, clinic_fr):
    client = client_for(app, clinic_fr.slug)
    token = csrf_token(client, "/login")
    statuses = [
        client.post(
            "/login", data={"email": f"x{i}@demo.example", "password": "x", "csrf_token": token}
        ).status_code
        for i in range(21)
    ]
    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429


def test_forms_without_csrf_token_are_refused(app, clinic_fr, admin_client):
    response = admin_client.post("/patients/new", data={"first_name": "No", "last_name": "Token"})
    assert response.status_code == 400
    assert "No Token" not in admin_client.get("/patients").text


def test_deactivated_staff_cannot_log_in(app, clinic_fr, admin_client):
    other = make_staff(app, clinic_fr, "secretary")
    admin_client.post(
        f"/staff/{other.id}/active",
        data={"active": "0", "csrf_token": csrf_token(admin_client, "/staff")},
    )
    client = client_for(app, clinic_fr.slug)
    assert post_password(client, other.email).status_code == 401


def test_admins_create_staff_who_then_enrol(app, clinic_fr, admin_client):
    page = admin_client.post(
        "/staff",
        data={
            "name": "Dr Nouveau",
            "email": "nouveau@demo.example",
            "role": "practitioner",
            "password": "a long enough password",
            "csrf_token": csrf_token(admin_client, "/staff"),
        },
    )
    assert page.status_code == 302
    assert "Dr Nouveau" in admin_client.get("/staff").text

    client = client_for(app, clinic_fr.slug)
    response = post_password(client, "nouveau@demo.example", "a long enough password")
    assert response.headers["Location"].endswith("/login/enrol")


def test_staff_creation_refuses_bad_input_and_changes_nothing(app, clinic_fr, admin_client):
    token = csrf_token(admin_client, "/staff")
    short = admin_client.post(
        "/staff",
        data={
            "name": "Short",
            "email": "short@demo.example",
            "role": "secretary",
            "password": "short",
            "csrf_token": token,
        },
    )
    assert short.status_code == 422
    assert 'id="e-password"' in short.text
    taken = admin_client.post(
        "/staff",
        data={
            "name": "Twin",
            "email": "admin@demo.example",
            "role": "secretary",
            "password": "a long enough password",
            "csrf_token": token,
        },
    )
    assert taken.status_code == 409
    listing = admin_client.get("/staff").text
    assert "Short" not in listing and "Twin" not in listing


def test_only_admins_manage_staff_and_settings(app, clinic_fr):
    secretary = make_staff(app, clinic_fr, "secretary")
    client = client_for(app, clinic_fr.slug)
    log_in(client, secretary)
    for path in ("/staff", "/settings/features", "/settings/api-keys", "/exports/patients.csv"):
        assert client.get(path).status_code == 403, path
    assert client.get("/patients").status_code == 200


def test_new_passwords_are_checked_against_common_ones_and_a_maximum_length(
    app, clinic_fr, admin_client
):
    token = csrf_token(admin_client, "/staff")
    for password, words in (
        ("password1234", "trop courant"),  # breached and common (NIST SP 800-63B)
        ("azertyuiop123", "trop courant"),  # a keyboard row
        ("nouveau@demo.example", "trop courant"),  # the account's own e-mail
        ("x" * 129, "au plus 128 caractères"),
    ):
        page = admin_client.post(
            "/staff",
            data={
                "name": "Nouveau",
                "email": "nouveau@demo.example",
                "role": "secretary",
                "password": password,
                "csrf_token": token,
            },
        )
        assert page.status_code == 422, password
        assert 'id="e-password"' in page.text and words in page.text, password
    assert "nouveau@demo.example" not in admin_client.get("/staff").text


# --- races: real requests at once against the app served on 127.0.0.1 -------------------------


class Browser:
    """A browser of the served app on one clinic's host: it keeps its session cookie (sent
    by hand: it is ``Secure``, the loopback is plain HTTP) and reads the forms' CSRF token."""

    def __init__(self, server: AppServer, slug: str) -> None:
        self.server, self.base = server, f"https://{slug}.{SERVER}"
        self.cookie = self.token = None

    def request(self, method: str, path: str, data=None) -> httpx.Response:
        headers = {"Cookie": f"session={self.cookie}"} if self.cookie else {}
        answer = self.server.request(method, self.base + path, headers, data=data, timeout=60)
        self.cookie = answer.cookies.get("session", self.cookie)
        return answer

    def open(self, path: str) -> "Browser":
        """GET ``path``, keeping the token of its form for the next posts."""
        page = self.request("GET", path)
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
        return self

    def submit(self, path: str, **form) -> int:
        return self.request("POST", path, {**form, "csrf_token": self.token}).status_code


def test_40_wrong_passwords_sent_8_at_a_time_get_exactly_5_checks(app, clinic_fr, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "1000 per minute")  # the lock, alone
    account = make_staff(app, clinic_fr, "admin")
    with AppServer(app) as server:
        browser = Browser(server, clinic_fr.slug).open("/login")

        def guess(i):
            return browser.submit("/login", email=account.email, password=f"guess number {i}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(guess, range(40)))
    assert statuses.count(401) == app.config["LOGIN_MAX_ATTEMPTS"]  # passwords checked
    assert statuses.count(423) == 40 - app.config["LOGIN_MAX_ATTEMPTS"]


def test_the_same_fresh_code_posted_by_8_pending_logins_opens_1_session(
    app, clinic_fr, monkeypatch
):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "1000 per minute")
    account = make_staff(app, clinic_fr, "admin")
    with AppServer(app) as server:
        pending = []
        for _ in range(8):
            browser = Browser(server, clinic_fr.slug).open("/login")
            assert browser.submit("/login", email=account.email, password=PASSWORD) == 302
            pending.append(browser.open("/login/code"))
        code = pyotp.TOTP(account.totp_secret).now()

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda b: b.submit("/login/code", code=code), pending))
    assert statuses.count(302) == 1, statuses
    with app.app_context():
        opened = sa.select(sa.func.count()).select_from(LoginSession)
        assert db.session.scalar(opened.where(LoginSession.account_id == account.id)) == 1
