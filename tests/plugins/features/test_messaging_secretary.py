"""A secretary handles the requests of the practitioners they work for: the admins tick them
on the staff page; the inbox, its counters and the home page's card then show only theirs,
and another practitioner's conversation is refused."""

import pytest

from tests.plugins.features.messaging_world import (
    PLUGINS,
    conversation_id_of,
    make_doctor,
    make_patient_of,
    patient_browser,
    post,
    staff_browser,
)
from tests.worlds import make_clinic, make_staff


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


def test_a_secretary_sees_and_answers_only_for_their_practitioners(app, clinic):
    martin = make_doctor(app, clinic, "dr.martin")
    petit = make_doctor(app, clinic, "dr.petit")
    jeanne = make_patient_of(app, clinic, [martin], language="en")
    paul = make_patient_of(
        app, clinic, [petit], first_name="Paul", last_name="Bernard", phone="0622334455"
    )
    to_martin = conversation_id_of(
        post(
            patient_browser(app, clinic, jeanne),
            "/me/messages/",
            practitioner=str(martin.id),
            body="Pour le Dr Martin",
        )
    )
    to_petit = conversation_id_of(
        post(
            patient_browser(app, clinic, paul),
            "/me/messages/",
            practitioner=str(petit.id),
            body="Pour le Dr Petit",
        )
    )
    secretary_account = make_staff(app, clinic, "secretary", email="sec@demo.example")
    secretary = staff_browser(app, clinic, secretary_account)
    admin = staff_browser(app, clinic, make_staff(app, clinic, "admin", email="a@demo.example"))

    # Working for every practitioner, as before: both.
    page = secretary.get("/inbox/").text
    assert "Inbox (2 unread, 2 unhandled)" in page
    assert "Jeanne Durand" in page and "Paul Bernard" in page

    staff_page = admin.get("/staff").text
    assert "Who secretaries work for" in staff_page
    path = f"/staff/{secretary_account.id}/practitioners"
    saved = post(admin, path, form_page="/staff", practitioners=str(martin.id))
    assert saved.status_code == 303
    assert "Saved: the practitioners" in admin.get("/staff").text

    page = secretary.get("/inbox/").text
    assert "Inbox (1 unread, 1 unhandled)" in page
    assert "Jeanne Durand" in page and "Paul Bernard" not in page
    home = secretary.get("/").text
    assert "Jeanne Durand" in home and "Paul Bernard" not in home
    assert secretary.get(f"/inbox/{to_petit}").status_code == 404
    refused = post(
        secretary, f"/inbox/{to_petit}/reply", form_page=f"/inbox/{to_martin}", body="Non"
    )
    assert refused.status_code == 404
    assert "Pour le Dr Petit" not in secretary.get(f"/inbox/{to_petit}").text
    assert secretary.get(f"/inbox/{to_martin}").status_code == 200
    answered = post(
        secretary, f"/inbox/{to_martin}/reply", form_page=f"/inbox/{to_martin}", body="Oui"
    )
    assert answered.status_code == 303

    # Writing first for another practitioner is refused naming the field.
    new = post(
        secretary,
        f"/inbox/new/{paul.id}",
        practitioner=str(petit.id),
        body="Bonjour",
        reply_mode="none",
    )
    assert new.status_code == 422 and "Choose a practitioner." in new.text

    # Only a secretary works for chosen practitioners; nothing ticked: every one again.
    doctor_path = f"/staff/{martin.id}/practitioners"
    post(admin, doctor_path, form_page="/staff", practitioners=str(petit.id))
    assert "Only a secretary works for chosen practitioners." in admin.get("/staff").text
    assert post(admin, path, form_page="/staff").status_code == 303
    assert "Paul Bernard" in secretary.get("/inbox/").text
    assert secretary.get(f"/inbox/{to_petit}").status_code == 200
