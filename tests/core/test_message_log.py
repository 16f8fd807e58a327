"""The clinic's message log: staff follow what left for which patient, and how it went."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic.models import AuditEvent, Patient
from core.db import db, utcnow
from core.delivery import outbox
from core.delivery.log import PAGE_SIZE
from tenants.scoping import tenant_scope
from tests.worlds import (
    OPEN_HOURS,
    client_for,
    consent_to_campaigns,
    csrf_token,
    log_in,
    make_clinic,
    make_message,
    make_patient,
    make_staff,
)

PLUGINS = ("outbox", "fr")
T0 = (utcnow() - timedelta(days=1)).replace(microsecond=0)


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=PLUGINS)


@pytest.fixture
def staff(app, clinic):
    """A secretary who chose English in the footer (the pages' words, whatever the catalog)."""
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "secretary"))
    chosen = client.post(
        "/language", data={"lang": "en", "next": "/", "csrf_token": csrf_token(client, "/")}
    )
    assert chosen.status_code == 302
    return client


@pytest.fixture
def jeanne(app, clinic):
    return make_patient(app, clinic, first_name="Jeanne", last_name="Durand", email="j@example.org")


@pytest.fixture
def paul(app, clinic):
    return make_patient(app, clinic, first_name="Paul", last_name="Martin", phone="0698765432")


def message(app, tenant, patient, minutes=0, **kwargs):
    """A message created ``minutes`` after T0."""
    return make_message(app, tenant, patient, created=T0 + timedelta(minutes=minutes), **kwargs)


def campaign(app, tenant, patient, minutes):
    """A campaign SMS the patient consented to, sent when it may be."""
    consent_to_campaigns(app, tenant, patient)
    with time_machine.travel(OPEN_HOURS):
        return message(app, tenant, patient, minutes, purpose="campaign")


def listed(page) -> list[str]:
    """The ids of the messages a log page lists, in order."""
    return re.findall(r'href="/messages/([0-9a-f-]{36})"', page.text)


def count(page) -> str:
    return re.search(r'<p role="status">([^<]+)</p>', page.text).group(1)


def audit_trail(app, tenant) -> list[tuple[str, object]]:
    with app.app_context(), tenant_scope(tenant.id):
        return db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.object_id).order_by(AuditEvent.at)
        ).all()


def test_the_log_lists_newest_first_without_content(app, clinic, staff, jeanne, paul):
    first = message(app, clinic, jeanne, minutes=0, text="Votre ordonnance est prête")
    second = message(app, clinic, paul, minutes=5, text="Résultats disponibles")
    third = message(app, clinic, jeanne, minutes=10, purpose="reminder", deliver=False)

    page = staff.get("/messages")
    assert page.status_code == 200
    assert listed(page) == [str(third), str(second), str(first)]
    assert count(page) == "3 messages"
    assert "Durand Jeanne" in page.text and "Martin Paul" in page.text
    assert "ordonnance" not in page.text and "Résultats" not in page.text  # no content
    assert "outbox_sms" in page.text and "Waiting to be sent" in page.text
    nav = re.search(r'<nav aria-label="Main">.*?</nav>', page.text, re.S).group(0)
    assert re.search(r'href="/messages" aria-current="page">Messages</a>', nav)
    assert ("message.search", None) in audit_trail(app, clinic)  # it shows patients' names


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=delivered", ["delivered"]),
        ("status=sent", ["email", "campaign"]),
        ("status=pending", ["pending"]),
        ("channel=email", ["email"]),
        ("purpose=campaign", ["campaign"]),
        ("purpose=reminder&status=delivered", ["delivered"]),
        ("patient=martin", ["campaign"]),
        ("patient=MARTIN+paul", ["campaign"]),
        ("patient=dupont", []),
        ("channel=voice", []),
    ],
)
def test_filters(app, clinic, staff, jeanne, paul, query, expected):
    ids = {
        "delivered": message(app, clinic, jeanne, 0, purpose="reminder", receipt="delivered"),
        "email": message(app, clinic, jeanne, 1, channels=("email", "sms")),
        "campaign": campaign(app, clinic, paul, 2),
        "pending": message(app, clinic, jeanne, 3, deliver=False),
    }
    page = staff.get(f"/messages?{query}")
    assert page.status_code == 200
    wanted = sorted(expected, key=lambda name: list(ids).index(name), reverse=True)
    assert listed(page) == [str(ids[name]) for name in wanted]


def test_a_patient_id_narrows_to_that_patient(app, clinic, staff, jeanne, paul):
    mine = message(app, clinic, jeanne)
    message(app, clinic, paul)
    page = staff.get(f"/messages?patient={jeanne.id}")
    assert listed(page) == [str(mine)]
    # The patient's page links there.
    assert f'href="/messages?patient={jeanne.id}"' in staff.get(f"/patients/{jeanne.id}").text


@pytest.mark.parametrize("query", ["status=lost", "channel=fax", "purpose=spam"])
def test_a_bad_filter_is_named(staff, jeanne, query):
    page = staff.get(f"/messages?{query}")
    assert page.status_code == 422
    field = query.split("=")[0]
    assert f'id="f-{field}" name="{field}" aria-invalid="true"' in page.text
    assert re.search(rf'<p class="error" id="e-{field}">Choose one of: ', page.text)


def test_pages_keep_the_filters(app, clinic, staff, jeanne):
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, jeanne.id))
        for i in range(PAGE_SIZE + 5):
            row = outbox.send(clinic, who, "campaign", "Vaccination", {}, ["sms"])
            row.created_at = T0 + timedelta(seconds=i)
        db.session.commit()
    message(app, clinic, jeanne, minutes=60, purpose="otp", deliver=False)  # filtered out

    first = staff.get("/messages?purpose=campaign")
    assert count(first) == f"{PAGE_SIZE + 5} messages"
    assert len(listed(first)) == PAGE_SIZE
    assert "Page 1 of 2" in first.text
    next_link = re.search(r'<a href="([^"]+)">Next</a>', first.text).group(1)
    assert "purpose=campaign" in next_link and "page=2" in next_link

    second = staff.get(next_link.replace("&amp;", "&"))
    assert len(listed(second)) == 5
    assert not set(listed(first)) & set(listed(second))
    assert "Previous" in second.text and ">Next<" not in second.text


def test_the_detail_shows_content_history_and_attempts_and_is_audited(app, clinic, staff, jeanne):
    message_id = message(
        app,
        clinic,
        jeanne,
        text="Votre ordonnance est prête",
        channels=("email", "sms"),
        receipt="delivered",
    )
    page = staff.get(f"/messages/{message_id}")
    assert page.status_code == 200
    assert "<h1>Message to Jeanne Durand</h1>" in page.text
    assert "Votre ordonnance est prête" in page.text
    assert "E-mail → SMS" in page.text  # the plan
    history = re.search(r'<h2 id="history">.*?</table>', page.text, re.S).group(0)
    steps = re.findall(
        r"<tr><td><time datetime=\"[^\"]+\">[^<]+</time></td><td>([^<]+)</td>", history
    )
    assert steps == ["Waiting to be sent", "Sent", "Delivered"]
    attempts = re.search(r'<h2 id="attempts">.*?</table>', page.text, re.S).group(0)
    assert "outbox_email" in attempts and "Accepted" in attempts
    assert re.search(r"<td>\d+ ms</td>", attempts)
    assert ("message.read", message_id) in audit_trail(app, clinic)


def test_a_message_never_sent_has_no_attempt(app, clinic, staff, jeanne):
    message_id = message(app, clinic, jeanne, deliver=False)
    page = staff.get(f"/messages/{message_id}")
    assert "No provider was called for this message." in page.text


def test_another_clinics_message_is_not_found(app, clinic, staff, jeanne):
    other = make_clinic(app, "other", "FR", plugins=PLUGINS)
    theirs = message(app, other, make_patient(app, other, first_name="Zoé"), text="Privé")
    mine = message(app, clinic, jeanne)

    page = staff.get(f"/messages/{theirs}")
    assert page.status_code == 404
    assert "Privé" not in page.text
    assert listed(staff.get("/messages")) == [str(mine)]
    assert "Zoé" not in staff.get("/messages").text
    assert ("message.read", theirs) not in audit_trail(app, clinic)


def test_the_log_needs_a_staff_login(app, clinic, jeanne):
    message_id = message(app, clinic, jeanne)
    anonymous = client_for(app, clinic.slug)
    for path in ("/messages", f"/messages/{message_id}"):
        page = anonymous.get(path)
        assert page.status_code == 302 and "/login" in page.location
