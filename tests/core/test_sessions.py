"""Login sessions live on the server: ending one ends every copy of its cookie.

A "copy" is what a thief keeps: a second browser holding the same session cookie. Time
moves with ``time_machine``, never with sleeps.
"""

from datetime import timedelta

import sqlalchemy as sa
import time_machine
from sqlalchemy import event

from core.clinic.models import AuditEvent, Patient
from core.db import db, utcnow
from core.delivery import access_links
from core.sessions import LoginSession
from tenants.scoping import tenant_scope
from tests.worlds import (
    PASSWORD,
    SERVER,
    client_for,
    csrf_token,
    log_in,
    make_patient,
    make_staff,
)

NEW_PASSWORD = "seven ravens under the old bridge"


def copy_of(app, client, slug: str):
    """A second browser holding a copy of ``client``'s session cookie."""
    host = f"{slug}.{SERVER}"
    cookie = client.get_cookie("session", domain=host)
    assert cookie is not None, "no session cookie to copy"
    thief = client_for(app, slug)
    thief.set_cookie("session", cookie.value, domain=host)
    return thief


def opens_staff_pages(client) -> bool:
    page = client.get("/patients")
    assert page.status_code in (200, 302), page.status_code
    return page.status_code == 200


def open_sessions(app, realm: str) -> int:
    with app.app_context():
        count = sa.select(sa.func.count()).select_from(LoginSession)
        return db.session.scalar(count.where(LoginSession.realm == realm))


def test_a_copy_of_the_cookie_opens_nothing_after_logout(app, clinic_fr, admin):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    thief = copy_of(app, browser, clinic_fr.slug)
    token = csrf_token(thief, "/patients/new")
    assert opens_staff_pages(thief)

    browser.post("/logout", data={"csrf_token": csrf_token(browser, "/")})

    assert not opens_staff_pages(thief)
    written = thief.post(
        "/patients/new", data={"first_name": "Eve", "last_name": "Copy", "csrf_token": token}
    )
    assert written.status_code == 302 and "/login" in written.headers["Location"]
    with app.app_context(), tenant_scope(clinic_fr.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 0
    assert open_sessions(app, str(clinic_fr.id)) == 0


def test_a_new_password_ends_every_other_copy_and_keeps_this_browser_in(app, clinic_fr, admin):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    thief = copy_of(app, browser, clinic_fr.slug)

    changed = browser.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": csrf_token(browser, "/account"),
        },
    )
    assert changed.status_code == 302
    assert "Toutes vos autres sessions sont fermées." in browser.get("/account").text
    assert opens_staff_pages(browser)
    assert not opens_staff_pages(thief)
    with app.app_context(), tenant_scope(clinic_fr.id):
        assert "user.password" in db.session.scalars(sa.select(AuditEvent.action)).all()

    fresh = client_for(app, clinic_fr.slug)
    token = csrf_token(fresh, "/login")
    old = fresh.post(
        "/login", data={"email": admin.email, "password": PASSWORD, "csrf_token": token}
    )
    assert old.status_code == 401
    new = fresh.post(
        "/login", data={"email": admin.email, "password": NEW_PASSWORD, "csrf_token": token}
    )
    assert new.status_code == 302


def test_a_password_change_names_the_field_it_refuses(app, clinic_fr, admin):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    token = csrf_token(browser, "/account")
    for current, new, confirm, field in (
        ("not my password", NEW_PASSWORD, NEW_PASSWORD, "current_password"),
        (PASSWORD, NEW_PASSWORD, "something else entirely", "confirm"),
        (PASSWORD, "password1234", "password1234", "password"),
        (PASSWORD, "x" * 129, "x" * 129, "password"),
    ):
        page = browser.post(
            "/account/password",
            data={
                "current_password": current,
                "password": new,
                "confirm": confirm,
                "csrf_token": token,
            },
        )
        assert page.status_code in (401, 422), (field, page.status_code)
        assert f'id="e-{field}"' in page.text, field
    assert opens_staff_pages(browser)  # nothing changed, still logged in


def test_deactivation_ends_the_sessions_of_the_account(app, clinic_fr, admin_client):
    secretary = make_staff(app, clinic_fr, "secretary")
    theirs = client_for(app, clinic_fr.slug)
    log_in(theirs, secretary)
    assert opens_staff_pages(theirs)

    admin_client.post(
        f"/staff/{secretary.id}/active",
        data={"active": "0", "csrf_token": csrf_token(admin_client, "/staff")},
    )
    assert not opens_staff_pages(theirs)


def test_log_out_everywhere_from_ones_own_account_page(app, clinic_fr, admin):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    thief = copy_of(app, browser, clinic_fr.slug)
    ended = browser.post(
        "/account/sessions/end", data={"csrf_token": csrf_token(browser, "/account")}
    )
    assert ended.status_code == 302 and ended.headers["Location"].endswith("/login")
    assert not opens_staff_pages(browser)
    assert not opens_staff_pages(thief)


def test_an_admin_logs_a_staff_member_out_everywhere(app, clinic_fr, admin_client):
    secretary = make_staff(app, clinic_fr, "secretary")
    theirs = client_for(app, clinic_fr.slug)
    log_in(theirs, secretary)
    copy = copy_of(app, theirs, clinic_fr.slug)

    # Staff who are not admins cannot log others out.
    refused = theirs.post(
        f"/staff/{secretary.id}/sessions/end", data={"csrf_token": csrf_token(theirs, "/")}
    )
    assert refused.status_code == 403

    page = admin_client.get("/staff")
    assert f"/staff/{secretary.id}/sessions/end" in page.text
    done = admin_client.post(
        f"/staff/{secretary.id}/sessions/end",
        data={"csrf_token": csrf_token(admin_client, "/staff")},
    )
    assert done.status_code == 302
    assert not opens_staff_pages(theirs) and not opens_staff_pages(copy)
    assert opens_staff_pages(admin_client)
    with app.app_context(), tenant_scope(clinic_fr.id):
        actions = db.session.scalars(sa.select(AuditEvent.action)).all()
        assert "user.sessions_ended" in actions


def test_an_idle_session_ends_and_the_idle_time_is_a_setting(app, clinic_fr, admin, monkeypatch):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    start = utcnow()
    idle = app.config["SESSION_IDLE_MINUTES"]
    with time_machine.travel(start + timedelta(minutes=idle - 1)):
        assert opens_staff_pages(browser)  # used: idle time counts from here
    with time_machine.travel(start + timedelta(minutes=2 * idle - 2)):
        assert opens_staff_pages(browser)
    with time_machine.travel(start + timedelta(minutes=3 * idle)):
        assert not opens_staff_pages(browser)

    monkeypatch.setitem(app.config, "SESSION_IDLE_MINUTES", 5)
    with time_machine.travel(utcnow() + timedelta(seconds=31)):  # a new code step
        log_in(browser, admin)
    with time_machine.travel(utcnow() + timedelta(minutes=7)):
        assert not opens_staff_pages(browser)


def test_a_session_ends_after_its_lifetime_however_busy(app, clinic_fr, admin, monkeypatch):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    start = utcnow()
    monkeypatch.setitem(app.config, "SESSION_MAX_HOURS", 1)  # the cookie still says 8 hours
    for minutes in (20, 40, 58):
        with time_machine.travel(start + timedelta(minutes=minutes)):
            assert opens_staff_pages(browser)
    with time_machine.travel(start + timedelta(minutes=61)):
        assert not opens_staff_pages(browser)


def test_pages_write_their_session_at_most_once_a_minute(app, clinic_fr, admin):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    writes = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE login_sessions"):
            writes.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        for _ in range(5):
            assert opens_staff_pages(browser)
        assert writes == []
        with time_machine.travel(utcnow() + timedelta(seconds=61)):
            for _ in range(3):
                assert opens_staff_pages(browser)
        assert len(writes) == 1
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def test_a_copy_of_a_patient_cookie_opens_nothing_after_the_patient_logs_out(app, clinic_fr):
    patient = make_patient(app, clinic_fr)
    with app.test_request_context(), tenant_scope(clinic_fr.id):
        token = access_links.make_token(clinic_fr, patient)
    browser = client_for(app, clinic_fr.slug)
    opened = browser.post(
        f"/me/access/{token}", data={"csrf_token": csrf_token(browser, f"/me/access/{token}")}
    )
    assert opened.status_code == 302
    assert browser.get("/me/").status_code == 200
    thief = copy_of(app, browser, clinic_fr.slug)
    assert thief.get("/me/").status_code == 200

    browser.post("/me/logout", data={"csrf_token": csrf_token(browser, "/me/")})
    assert browser.get("/me/").status_code == 401
    assert thief.get("/me/").status_code == 401
    assert open_sessions(app, f"patient:{clinic_fr.id}") == 0


def test_a_session_copied_to_another_clinic_opens_nothing_there(
    app, clinic_fr, other_clinic, admin
):
    browser = client_for(app, clinic_fr.slug)
    log_in(browser, admin)
    cookie = browser.get_cookie("session", domain=f"{clinic_fr.slug}.{SERVER}")
    elsewhere = client_for(app, other_clinic.slug)
    elsewhere.set_cookie("session", cookie.value, domain=f"{other_clinic.slug}.{SERVER}")
    assert not opens_staff_pages(elsewhere)


def test_a_staff_login_in_a_patients_browser_ends_the_patients_session(app, clinic_fr, admin):
    patient = make_patient(app, clinic_fr)
    with app.test_request_context(), tenant_scope(clinic_fr.id):
        token = access_links.make_token(clinic_fr, patient)
    browser = client_for(app, clinic_fr.slug)
    link = f"/me/access/{token}"
    assert browser.post(link, data={"csrf_token": csrf_token(browser, link)}).status_code == 302
    thief = copy_of(app, browser, clinic_fr.slug)
    assert thief.get("/me/").status_code == 200

    log_in(browser, admin)
    assert browser.get("/me/").status_code == 401
    assert thief.get("/me/").status_code == 401
