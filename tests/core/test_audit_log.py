"""The clinic's audit log: admins read who did what, when, in plain words; only their own
clinic's events; reading it is audited too. And the records an online sign-up creates, which
staff check."""

import html
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from core.clinic import apikeys, audit
from core.clinic.audit import PAGE_SIZE
from core.clinic.models import AuditEvent, Patient
from core.db import db, utcnow
from core.delivery.models import Message
from tenants import provisioning, scoping
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import client_for, csrf_token, log_in, make_patient, make_staff

DAY = datetime(2026, 3, 1, tzinfo=UTC)  # a Sunday; Paris is UTC+1 then


def english(client):
    """The client chose English in the footer (the pages' words, whatever the catalog)."""
    form = {"lang": "en", "next": "/", "csrf_token": csrf_token(client, "/")}
    assert client.post("/language", data=form).status_code == 302
    return client


@pytest.fixture
def admin_en(admin_client):
    return english(admin_client)


def record(app, tenant, action, by="visitor", detail=None, object_id=None, at=None):
    """An event in the clinic's trail, as the code records it, at ``at`` (else now)."""
    with app.app_context(), tenant_scope(tenant.id):
        event = AuditEvent(actor=by, action=action, detail=detail, object_id=object_id)
        event.at = at or utcnow()
        db.session.add(event)
        db.session.commit()
        return event.id


def trail(app, tenant) -> list[AuditEvent]:
    with app.app_context(), tenant_scope(tenant.id):
        rows = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.at)).all()
        db.session.expunge_all()
        return list(rows)


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def rows(page) -> list[tuple[str, ...]]:
    """The audit log's rows as a reader sees them: (when, who, what, detail, patient)."""
    table = re.search(r'<table class="events">.*?</table>', page.text, re.S)
    if table is None:
        return []
    body = table.group(0).split("<tbody>")[1]
    return [
        tuple(text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S))
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def details(page) -> list[str]:
    return [row[3] for row in rows(page)]


def link(page, label: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="(?:prev|next)">{label}</a>', page.text)
    return html.unescape(found.group(1)) if found else None


def per_day(page) -> dict[str, int]:
    """The chart's table: each day (a column header) with its count."""
    chart = re.search(r'<table class="bars">.*?</table>', page.text, re.S).group(0)
    days = re.findall(r'<th scope="col"><time datetime="(\d{4}-\d\d-\d\d)">', chart)
    counts = re.findall(r'<span class="count">(\d+)</span>', chart)
    assert len(days) == len(counts)
    return {day: int(n) for day, n in zip(days, counts, strict=True)}


# --- reading the log --------------------------------------------------------------------------


def test_an_admin_reads_who_did_what_in_plain_words(app, clinic_fr, admin, admin_en):
    jeanne = make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand")
    with app.app_context(), tenant_scope(clinic_fr.id):
        _key, token = apikeys.create_key("Front desk software")
        db.session.commit()
    assert admin_en.get(f"/patients/{jeanne.id}").status_code == 200  # a staff read
    api = admin_en.get(
        f"/api/v1/patients/{jeanne.id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 200  # an integrator's read
    record(app, clinic_fr, "otp.sent", detail="sms to +33 6 •• •• •• 78")
    record(app, clinic_fr, "otp.failed", detail="wrong code (1)")
    record(app, clinic_fr, "otp.blocked", detail="too many wrong codes")
    record(app, clinic_fr, "lab.import", by="system", detail="12 results")

    page = admin_en.get("/audit")

    assert page.status_code == 200
    listed = rows(page)
    assert [(who, what, detail) for _when, who, what, detail, _patient in listed[:6]] == [
        ("Relais (automatic)", "lab.import", "12 results"),  # unknown: shown as recorded
        ("Visitor", "Blocked", "too many wrong codes"),
        ("Visitor", "Wrong code entered", "wrong code (1)"),
        ("Visitor", "Code sent", "sms to +33 6 •• •• •• 78"),
        ("API key: Front desk software", "Patient record read", "—"),
        ("Admin demo", "Patient record read", "—"),
    ]
    assert listed[4][4] == listed[5][4] == "Durand Jeanne"
    assert page.text.count(f'<a href="/patients/{jeanne.id}">Durand Jeanne</a>') == 3
    # What set the world up, oldest first at the bottom: no one was logged in.
    assert [(who, what) for _when, who, what, _detail, _patient in listed[6:]] == [
        ("Relais (automatic)", "API key created"),
        ("Relais (automatic)", "Patient record created"),
        ("Relais (automatic)", "Staff account created"),
    ]
    assert '<p role="status">9 events</p>' in page.text
    # In the admin's menu, marked as the current page.
    nav = re.search(r'<nav aria-label="Main">.*?</nav>', page.text, re.S).group(0)
    assert re.search(r'href="/audit" aria-current="page">Audit log</a>', nav)


def test_times_are_the_clinics(app, clinic_fr, admin_en):
    record(app, clinic_fr, "otp.sent", at=DAY.replace(hour=23, minute=30))  # Paris: 00:30
    page = admin_en.get("/audit?actor=visitor")
    [(when, *_rest)] = rows(page)
    assert when == "March 2, 2026, 00:30"  # the clinic's wall clock, one format for every page
    assert '<time datetime="2026-03-01T23:30:00+00:00">' in page.text


@pytest.fixture
def otp_story(app, clinic_fr, admin):
    """A week of events: codes to visitors, a staff read, an API key's, a patient's sign-up."""
    key = uuid.uuid4()
    events = [
        ("otp.sent", "visitor", "sent 1", 0),
        ("otp.failed", "visitor", "failed", 1),
        ("otp.blocked", "visitor", "blocked", 2),
        ("otp.refused", "visitor", "refused", 3),
        ("patient.read", f"user:{admin.id}", "staff read", 4),
        ("patient.read", f"api_key:{key}", "key read", 5),
        ("patient.sign_up", "patient", "signed up", 6),
    ]
    for action, by, detail, day in events:
        record(app, clinic_fr, action, by, detail, at=DAY + timedelta(days=day, hours=12))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # "—": the admin's account, created today (by the fixture)
        (
            "",
            ["—", "signed up", "key read", "staff read", "refused", "blocked", "failed", "sent 1"],
        ),
        ("action=otp.failed", ["failed"]),
        ("action=otp.", ["refused", "blocked", "failed", "sent 1"]),
        ("action=patient.read", ["key read", "staff read"]),
        ("action=appointment.", []),
        ("actor=visitor", ["refused", "blocked", "failed", "sent 1"]),
        ("actor=staff", ["staff read"]),
        ("actor=api_key", ["key read"]),
        ("actor=patient", ["signed up"]),
        ("from=2026-03-03", ["—", "signed up", "key read", "staff read", "refused", "blocked"]),
        ("to=2026-03-02", ["failed", "sent 1"]),
        ("from=2026-03-02&to=2026-03-04", ["refused", "blocked", "failed"]),
        ("action=otp.&from=2026-03-03&actor=visitor", ["refused", "blocked"]),
    ],
)
def test_filters(admin_en, otp_story, query, expected):
    page = admin_en.get(f"/audit?{query}")
    assert page.status_code == 200
    assert details(page) == expected
    if not expected:
        assert "No event matches these filters." in page.text


def test_days_are_the_clinics(app, clinic_fr, admin_en):
    # 23:30 UTC on 1 March is already 2 March in Paris.
    record(app, clinic_fr, "otp.sent", detail="late", at=DAY.replace(hour=23, minute=30))
    record(app, clinic_fr, "otp.sent", detail="early", at=DAY.replace(hour=22, minute=30))
    assert details(admin_en.get("/audit?from=2026-03-02&to=2026-03-02")) == ["late"]
    assert details(admin_en.get("/audit?to=2026-03-01")) == ["early"]


def test_the_action_filter_offers_the_actions_present_by_family(admin_en, otp_story):
    page = admin_en.get("/audit?action=otp.")
    select = re.search(r'<select id="f-action" name="action">(.*?)</select>', page.text, re.S)
    options = re.findall(r'<option value="([^"]*)" ?(selected)?>([^<]+)</option>', select.group(1))
    assert ("otp.", "selected", "All: Sign-up and login codes") in options
    assert ("otp.failed", "", "Wrong code entered") in options
    assert ("patient.sign_up", "", "Signed up online") in options
    assert "appointment.read" not in select.group(1)  # not in this clinic's log
    assert '<optgroup label="Sign-up and login codes">' in select.group(1)
    # What the filter chose stays chosen, even with nothing of it in the log.
    page = admin_en.get("/audit?action=appointment.")
    assert re.search(
        r'<option value="appointment\." selected>All: Appointments</option>', page.text
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("action=<script>", "action"),
        ("action=" + "a" * 41, "action"),
        ("actor=robot", "actor"),
        ("from=01/03/2026", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-03-05&to=2026-03-01", "to"),
    ],
)
def test_a_bad_filter_is_named_and_reads_nothing(app, clinic_fr, admin_en, otp_story, query, field):
    before = trail(app, clinic_fr)
    page = admin_en.get(f"/audit?{query}")
    assert page.status_code == 422
    assert re.search(rf'id="f-{field}" name="{field}"[^>]* aria-invalid="true"', page.text)
    assert re.search(rf'<p class="error" id="e-{field}">\w', page.text)
    assert rows(page) == []
    assert len(trail(app, clinic_fr)) == len(before)  # no "audit.read": nothing was read


def test_an_unknown_page_is_refused(app, clinic_fr, admin_en):
    record(app, clinic_fr, "otp.sent")
    for query in ("before=nope", f"after={uuid.uuid4()}"):
        page = admin_en.get(f"/audit?{query}")
        assert page.status_code == 422
        assert "This page of the log is no longer there" in page.text


def test_pages_of_fifty_older_and_newer_keep_the_filters(app, clinic_fr, admin_en):
    with app.app_context(), tenant_scope(clinic_fr.id):
        for n in range(2 * PAGE_SIZE + 20):
            at = DAY + timedelta(minutes=n)
            db.session.add(AuditEvent(actor="visitor", action="otp.sent", detail=str(n), at=at))
        db.session.commit()

    first = admin_en.get("/audit")
    # "—": the admin's account, created today (by the fixture).
    assert details(first) == ["—", *(str(n) for n in range(119, 70, -1))]
    assert link(first, "Newer events") is None
    # That read added an event at the top: the next page starts where this one ended.
    second = admin_en.get(link(first, "Older events"))
    assert details(second) == [str(n) for n in range(70, 20, -1)]
    third = admin_en.get(link(second, "Older events"))
    assert details(third) == [str(n) for n in range(20, -1, -1)]
    assert link(third, "Older events") is None
    back = admin_en.get(link(third, "Newer events"))
    assert details(back) == details(second)
    assert details(admin_en.get(link(back, "Newer events"))) == details(first)

    filtered = admin_en.get("/audit?action=otp.&actor=visitor")
    older = link(filtered, "Older events")
    assert "action=otp." in older and "actor=visitor" in older
    assert details(admin_en.get(older)) == [str(n) for n in range(69, 19, -1)]


def test_reading_the_log_is_audited(app, clinic_fr, admin, admin_en, otp_story):
    admin_en.get("/audit?action=otp.&actor=visitor")
    read = trail(app, clinic_fr)[-1]
    assert (read.action, read.actor) == ("audit.read", f"user:{admin.id}")
    assert read.detail == "action=otp. actor=visitor"
    page = admin_en.get("/audit?action=audit.read")
    assert [(r[1], r[2], r[3]) for r in rows(page)] == [
        ("Admin demo", "Audit log read", "action=otp. actor=visitor")
    ]


def test_events_per_day_of_the_last_two_weeks(app, clinic_fr, admin_en):
    paris = ZoneInfo(clinic_fr.timezone)
    today = utcnow().astimezone(paris).date()

    def noon(days_ago):
        local = datetime.combine(today - timedelta(days=days_ago), time(12), tzinfo=paris)
        return local.astimezone(UTC)

    for days_ago, action in [(0, "otp.sent"), (0, "otp.failed"), (3, "otp.sent"), (20, "otp.sent")]:
        record(app, clinic_fr, action, at=noon(days_ago))
    record(app, clinic_fr, "patient.read", by="system", at=noon(1))
    # and the admin's account, created by the fixture a moment ago: today too.

    chart = per_day(admin_en.get("/audit"))
    assert len(chart) == 14 and min(chart) == (today - timedelta(days=13)).isoformat()
    assert chart[today.isoformat()] == 3
    assert chart[(today - timedelta(days=1)).isoformat()] == 1
    assert chart[(today - timedelta(days=3)).isoformat()] == 1
    assert sum(chart.values()) == 5  # 20 days ago is out; this read is not counted yet

    chart = per_day(admin_en.get("/audit?action=otp.sent&to=2000-01-01"))  # days: the list's
    assert chart[today.isoformat()] == 1 and sum(chart.values()) == 2


# --- who may read it --------------------------------------------------------------------------


def test_only_admins_read_it(app, clinic_fr, admin_client):
    secretary = client_for(app, clinic_fr.slug)
    log_in(secretary, make_staff(app, clinic_fr, "secretary"))
    assert secretary.get("/audit").status_code == 403
    assert 'href="/audit"' not in secretary.get("/").text  # not in a secretary's menu
    assert 'href="/audit"' in admin_client.get("/").text
    assert all(e.action != "audit.read" for e in trail(app, clinic_fr))


def test_a_clinic_never_sees_another_clinics_events(app, clinic_fr, other_clinic, admin_en):
    record(app, clinic_fr, "otp.sent", detail="ours", at=utcnow() - timedelta(hours=1))
    record(app, other_clinic, "otp.blocked", detail="theirs", at=utcnow() - timedelta(hours=1))
    record(app, other_clinic, "other.secret", detail="theirs too")
    theirs = make_patient(app, other_clinic, first_name="Paul", last_name="Martin")
    record(app, clinic_fr, "patient.read", by="system", object_id=theirs.id, detail="forged")

    page = admin_en.get("/audit?action=otp.")
    assert details(page) == ["ours"]
    page = admin_en.get("/audit?actor=system")
    assert details(page) == ["forged", "—"]  # "—": the admin's account, by the fixture
    assert "theirs" not in page.text and "other.secret" not in page.text
    assert "Martin" not in page.text  # another clinic's patient is no record of ours
    assert rows(page)[0][4] == "Record no longer held"
    assert sum(per_day(admin_en.get("/audit")).values()) == 3 + 2  # and the two reads
    assert details(admin_en.get("/audit?action=otp.blocked")) == []

    other_admin = client_for(app, other_clinic.slug)
    log_in(other_admin, make_staff(app, other_clinic, "admin"))
    english(other_admin)
    assert details(other_admin.get("/audit?from=2000-01-01")) == [
        "—",  # their admin's account
        "—",  # Paul's record
        "theirs too",
        "theirs",
    ]
    assert details(other_admin.get("/audit?action=otp.")) == ["theirs"]
    assert "ours" not in other_admin.get("/audit").text


def test_the_orm_filter_alone_keeps_other_clinics_out(app, clinic_fr, other_clinic, monkeypatch):
    """Without PostgreSQL's row-level security (SQLite, the embedded first run, has none),
    the ORM's tenant filter alone keeps another clinic out of every query of the page."""
    record(app, clinic_fr, "otp.sent", detail="ours")
    record(app, other_clinic, "otp.blocked", detail="theirs")
    monkeypatch.setitem(scoping._app_role, "name", "")  # stay the superuser: no RLS
    with app.test_request_context(), tenant_scope(clinic_fr.id):
        everything = sa.select(sa.func.count()).select_from(AuditEvent.__table__)
        assert db.session.scalar(everything) == 2  # RLS is off indeed (Core: no ORM filter)
        log = audit.read_log(audit.Filters(), clinic_fr.timezone)
        shown = [e.detail for e in log.events]
        counted = (log.total, sum(n for _day, n in log.per_day))
        db.session.rollback()
    assert shown == ["ours"]
    assert log.actions == ["otp.sent"]  # the other clinic's action is not offered
    assert counted == (1, 1)  # and its events are counted nowhere


# --- online sign-ups: what the clinic sees ----------------------------------------------------


@pytest.fixture
def codes_on(app, clinic_fr):
    """Sign-up and login codes offered in France (codes leave through the test outbox)."""
    with app.app_context(), system_scope():
        for name in ("otp", "outbox"):
            provisioning.set_country_plugin("FR", name, True)
        db.session.commit()


def sign_up_online(app, clinic, phone, wrong_first=False):
    """A visitor proves their phone with the code sent by SMS, then signs up, on the pages
    (the JSON verify step cannot lead to a sign-up yet: see the report of this branch)."""
    visitor = client_for(app, clinic.slug)
    sent = visitor.post(
        "/me/login", data={"phone": phone, "csrf_token": csrf_token(visitor, "/me/login")}
    )
    assert sent.status_code == 302, sent.text
    with app.app_context(), tenant_scope(clinic.id):
        sms = db.session.scalars(sa.select(Message).order_by(Message.created_at.desc())).first()
        code = re.search(r"\b(\d{6})\b", sms.content["text"]).group(1)
    token = csrf_token(visitor, "/me/login/code")
    if wrong_first:
        wrong = "000000" if code != "000000" else "111111"
        refused = visitor.post("/me/login/code", data={"code": wrong, "csrf_token": token})
        assert refused.status_code >= 400
    proved = visitor.post("/me/login/code", data={"code": code, "csrf_token": token})
    assert proved.headers["Location"] == "/me/signup", proved.text
    form = {
        "first_name": "Lina",
        "last_name": "Petit",
        "birth_date": "1990-05-04",
        "language": "fr",
        "csrf_token": csrf_token(visitor, "/me/signup"),
    }
    signed = visitor.post("/me/signup", data=form)
    assert signed.status_code == 302, signed.text
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalar(sa.select(Patient.id).where(Patient.signed_up_at.is_not(None)))


def test_a_sign_up_to_check_from_the_list_to_checked(app, clinic_fr, admin, admin_en, codes_on):
    make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand")
    lina = sign_up_online(app, clinic_fr, "0611223344", wrong_first=True)

    listing = admin_en.get("/patients")
    assert 'href="/patients?to_check=1">To check (1)</a>' in listing.text
    badge = "Signed up online — to check"
    row = re.search(rf'<a href="/patients/{lina}">Petit Lina</a>(.*?)</td>', listing.text, re.S)
    assert badge in row.group(1)
    assert listing.text.count(badge) == 1  # Jeanne, known at the front desk, has none
    to_check = admin_en.get("/patients?to_check=1")
    assert re.findall(r'href="/patients/([0-9a-f-]{36})"', to_check.text) == [str(lina)]
    assert "1 patient" in to_check.text
    assert 'href="/patients?to_check=1"' in admin_en.get("/").text  # on the home page too

    page = admin_en.get(f"/patients/{lina}")
    assert "Has an online account since" in page.text
    form = re.search(r'<section class="notice to-check"[^>]*>.*?</section>', page.text, re.S)
    assert form and badge in form.group(0)
    assert f'action="/patients/{lina}/reviewed"' in form.group(0)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(0)).group(1)

    assert admin_en.post(f"/patients/{lina}/reviewed").status_code == 400  # no CSRF token
    done = admin_en.post(f"/patients/{lina}/reviewed", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"] == f"/patients/{lina}"
    page = admin_en.get(f"/patients/{lina}")
    assert "Marked as checked." in page.text and badge not in page.text
    assert "Has an online account since" in page.text
    with app.app_context(), tenant_scope(clinic_fr.id):
        assert db.session.get(Patient, (clinic_fr.id, lina)).review_needed is False
    assert 'href="/patients?to_check=1"' not in admin_en.get("/patients").text
    admin_en.post(f"/patients/{lina}/reviewed", data={"csrf_token": token})  # twice: once
    reviews = [e for e in trail(app, clinic_fr) if e.action == "patient.reviewed"]
    assert [(e.actor, e.object_id) for e in reviews] == [(f"user:{admin.id}", lina)]

    # The audit log tells the story, in plain words (staff reads and searches aside).
    story = [
        (who, what, patient)
        for _when, who, what, _detail, patient in rows(admin_en.get("/audit"))
        if what not in ("Patient record read", "Patients searched")
    ]
    assert story[0] == ("Admin demo", "Online sign-up checked", "Petit Lina")
    # The sign-up's events, one transaction: in any order within it.
    assert sorted(story[1:3]) == [
        ("Patient", "Patient record created", "Petit Lina"),
        ("Patient", "Signed up online", "Petit Lina"),
    ]
    assert story[3:6] == [
        ("Visitor", "Code confirmed", "—"),
        ("Visitor", "Wrong code entered", "—"),
        ("Visitor", "Code sent", "—"),
    ]


def test_a_sign_up_matching_a_record_needs_no_check(app, clinic_fr, admin_en, codes_on):
    known = make_patient(
        app,
        clinic_fr,
        first_name="Lina",
        last_name="Petit",
        phone="0611223344",
        birth_date="1990-05-04",
    )
    lina = sign_up_online(app, clinic_fr, "+33611223344")
    assert lina == known.id  # linked: the same record
    assert "Signed up online — to check" not in admin_en.get("/patients").text
    assert "To check (" not in admin_en.get("/patients").text
    page = admin_en.get(f"/patients/{lina}")
    assert "Has an online account since" in page.text and "notice to-check" not in page.text
    assert details(admin_en.get("/audit?action=patient.sign_up")) == ["linked"]
