"""The home page shows a clinic's staff today's work: messages gone wrong and why, sign-ups
to check, and the cards features add through ``relais_dashboard_items``."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.clinic.models import Patient
from core.db import db
from core.plugins import DEFAULT_PLUGINS
from tenants.scoping import tenant_scope
from tests.core.host_plugins import inbox
from tests.core.test_audit_log import english
from tests.core.test_plugin_host import dispose, make_app
from tests.plugins.features.messaging_world import patient_browser
from tests.worlds import client_for, log_in, make_clinic, make_message, make_patient, make_staff


def cards(html: str) -> dict[str, str]:
    """Each card of the board by its title, its text squeezed to one line."""
    found = {}
    for section in re.findall(r'<section class="board-card.*?</section>', html, re.S):
        title = re.search(
            r'<h2 id="[^"]+">(?:<span class="figure">(\d+)</span> )?([^<]+)</h2>', section
        )
        text = " ".join(re.sub(r"<[^>]+>", " ", section).split())
        found[title.group(2)] = text
    return found


def test_refused_messages_are_listed_with_why_and_sign_ups_to_check(app, clinic_fr):
    jeanne = make_patient(app, clinic_fr)
    lina = make_patient(app, clinic_fr, first_name="Lina", last_name="Petit", phone="0611111111")
    with app.app_context(), tenant_scope(clinic_fr.id):
        db.session.get(Patient, (clinic_fr.id, lina.id)).review_needed = True
        db.session.commit()
    # A campaign to a patient who never agreed to campaigns: the French rules refuse it.
    make_message(app, clinic_fr, jeanne, purpose="campaign", deliver=False)
    client = client_for(app, clinic_fr.slug)
    log_in(client, make_staff(app, clinic_fr, "secretary"))

    board = cards(english(client).get("/").text)
    wrong = board["Messages that failed or were refused today"]
    assert wrong.startswith("1 Messages that failed or were refused today Campaign Refused: ")
    assert "consent" in wrong  # the rule's reason
    assert wrong.endswith("See all (Messages that failed or were refused today)")
    sign_ups = board["Online sign-ups to check"]
    assert sign_ups == "1 Online sign-ups to check Lina Petit See all (Online sign-ups to check)"


def test_a_quiet_day_says_nothing_waits(app, clinic_fr):
    client = client_for(app, clinic_fr.slug)
    log_in(client, make_staff(app, clinic_fr, "secretary"))
    board = cards(english(client).get("/").text)
    assert board["Messages that failed or were refused today"].endswith(
        "Every message of today went out."
    )
    assert board["Online sign-ups to check"].endswith("No sign-up to check.")


@pytest.fixture
def inbox_app(app):
    application = make_app(PLUGINS=(*DEFAULT_PLUGINS, "tests.core.host_plugins.inbox"))
    yield application
    inbox.asked.clear()
    dispose(application)


def test_a_feature_adds_its_card_where_it_is_enabled(inbox_app):
    lyon = make_clinic(inbox_app, "lyon", plugins=("fr", "inbox"))
    berlin = make_clinic(inbox_app, "berlin", "DE", plugins=())
    secretary = make_staff(inbox_app, lyon, "secretary")
    client = client_for(inbox_app, "lyon")
    log_in(client, secretary)

    board = cards(english(client).get("/").text)
    assert board["Replies to read"] == (
        "2 Replies to read Jeanne Durand Unread Mark read (Jeanne Durand) See all (Replies to read)"
    )
    page = english(client).get("/").text  # the line's button: a form posting to its route
    assert re.search(
        r'<form method="post" action="/messages">\s*<input type="hidden" name="csrf_token"', page
    )
    # Cards by their order: the feature's 15 comes before the sign-ups' 30.
    assert list(board) == [
        "Replies to read",
        "Messages that failed or were refused today",
        "Online sign-ups to check",
    ]
    assert inbox.asked[-1] == (secretary.email, datetime.now(ZoneInfo("Europe/Paris")).date())

    elsewhere = client_for(inbox_app, "berlin")
    log_in(elsewhere, make_staff(inbox_app, berlin, "secretary"))
    assert "Replies to read" not in elsewhere.get("/").text


def test_a_feature_adds_its_card_and_link_to_the_patients_home(inbox_app):
    lyon = make_clinic(inbox_app, "lyon", plugins=("fr", "inbox"))
    patient = make_patient(inbox_app, lyon, language="en")
    home = patient_browser(inbox_app, lyon, patient).get("/me/").text
    board = cards(home)
    # The feature's card (order 5) before the core's consents (50); the button is a form.
    assert list(board) == ["Your replies", "News and campaigns from your clinic"]
    assert "A reply from the clinic New" in board["Your replies"]
    assert re.search(
        r'<form method="post" action="/me/">\s*<input type="hidden" name="csrf_token"', home
    )
    assert "Mark all read" in home
    assert '<a href="/me/">Older replies</a>' in home  # relais_patient_links, below
    assert ("Jeanne", None) in inbox.asked
