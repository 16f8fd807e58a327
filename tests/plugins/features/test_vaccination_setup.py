"""Vaccination set-up pages: admins change vaccines, campaigns and centres with the checks
of their creation (a wrong field is a 422 naming it, nothing changed), bookings made keep
their dates and places, and what bookings depend on is not deleted."""

import io
import uuid
from datetime import time, timedelta

import pytest
import sqlalchemy as sa

from core.clinic.models import AuditEvent
from core.db import db
from plugins.features.vaccination.models import (
    Booking,
    Campaign,
    Centre,
    Line,
    OpeningHours,
    SlotCount,
    Stock,
    Vaccine,
)
from tenants.scoping import tenant_scope
from tests.plugins.features.vaccination_world import PLUGINS, add_centre, at, build, today
from tests.worlds import client_for, csrf_token, log_in, make_clinic, make_patient, make_staff

VACCINE_FORM = {
    "code": "comirnaty",
    "name": "Comirnaty",
    "doses": "2",
    "min_days": "21",
    "ideal_days": "28",
    "max_days": "42",
    "min_age": "",
    "max_age": "",
}
CENTRE_FORM = {
    "code": "PAR-01",
    "name": "Centre Paris 15",
    "kind": "centre",
    "address": "1 rue de Vaugirard, Paris",
    "lines": "2",
    "capacity": "1",
    "slot_minutes": "10",
}


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


@pytest.fixture
def world(app, clinic):
    return build(app, clinic)


@pytest.fixture
def admin(app, clinic, world):
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    client.token = csrf_token(client, "/vaccination/setup")
    client.post("/language", data={"lang": "en", "csrf_token": client.token})  # English pages
    return client


@pytest.fixture
def booked(app, clinic, world):
    """Dose 1 in two days and dose 2 four weeks later, booked through the API."""
    patient = make_patient(app, clinic, birth_date=today().replace(year=1950))
    api = client_for(app, clinic.slug)
    first = at(today() + timedelta(days=2), 9)
    answer = api.post(
        "/api/v1/vaccination/bookings",
        headers={"Authorization": f"Bearer {world.token}"},
        json={
            "patient": str(patient.id),
            "centre": str(world.centre_id),
            "vaccine": str(world.vaccine_id),
            "first": first.isoformat(),
            "second": (first + timedelta(days=28)).isoformat(),
        },
    )
    assert answer.status_code == 201, answer.json
    return [d["starts_at"] for d in answer.json["doses"]]


def post(client, path, **form):
    return client.post(path, data={"csrf_token": client.token, **form})


def read(app, clinic, query):
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.execute(query).all()


def audited(app, clinic, action):
    return read(app, clinic, sa.select(AuditEvent.object_id).where(AuditEvent.action == action))


# --- vaccines ----------------------------------------------------------------------------------


def test_the_set_up_page_lists_what_can_be_changed(admin, world):
    page = admin.get("/vaccination/setup")
    assert page.status_code == 200
    assert f"/vaccination/vaccines/{world.vaccine_id}/edit" in page.text
    assert f"/vaccination/centres/{world.centre_id}/edit" in page.text


def test_a_new_dose_interval_leaves_the_bookings_made_on_their_dates(
    app, clinic, world, admin, booked
):
    path = f"/vaccination/vaccines/{world.vaccine_id}/edit"
    page = admin.get(path)
    assert "Bookings already made keep their dates" in page.text
    assert "2 doses are booked ahead with this vaccine." in page.text
    changed = post(admin, path, **VACCINE_FORM | {"min_days": "28", "ideal_days": "35"})
    assert changed.status_code == 303
    vaccine = read(app, clinic, sa.select(Vaccine.min_interval_days, Vaccine.ideal_interval_days))
    assert (28, 35) in vaccine
    starts = read(app, clinic, sa.select(Booking.starts_at).order_by(Booking.dose))
    assert [s.isoformat() for (s,) in starts] == booked
    assert audited(app, clinic, "vaccination.vaccine.changed") == [(world.vaccine_id,)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_days", "7"),  # below the minimum
        ("doses", "0"),
        ("name", ""),
        ("code", "jcovden"),  # the other vaccine's
        ("max_age", "abc"),
    ],
)
def test_a_wrong_vaccine_field_is_named_and_nothing_changes(
    app, clinic, world, admin, field, value
):
    path = f"/vaccination/vaccines/{world.vaccine_id}/edit"
    page = post(admin, path, **VACCINE_FORM | {"name": "Changed", field: value})
    assert page.status_code == 422
    assert f'id="e-{field}"' in page.text
    assert read(app, clinic, sa.select(Vaccine.name).where(Vaccine.id == world.vaccine_id)) == [
        ("Comirnaty",)
    ]
    assert audited(app, clinic, "vaccination.vaccine.changed") == []


def test_a_vaccine_with_bookings_is_not_deleted_an_unused_one_is(app, clinic, world, admin, booked):
    refused = post(admin, f"/vaccination/vaccines/{world.vaccine_id}/delete")
    assert refused.status_code == 409
    assert "Doses of this vaccine were booked or given" in refused.text
    deleted = post(admin, f"/vaccination/vaccines/{world.single_id}/delete")
    assert deleted.status_code == 303
    left = read(app, clinic, sa.select(Vaccine.id))
    assert left == [(world.vaccine_id,)]
    assert read(app, clinic, sa.select(Stock.vaccine_id).distinct()) == [(world.vaccine_id,)]
    assert audited(app, clinic, "vaccination.vaccine.deleted") == [(world.single_id,)]


def test_the_set_up_needs_an_admin_and_the_form_its_csrf_token(app, clinic, world, admin):
    path = f"/vaccination/vaccines/{world.vaccine_id}/edit"
    assert admin.post(path, data=VACCINE_FORM | {"name": "Changed"}).status_code == 400
    secretary = client_for(app, clinic.slug)
    log_in(secretary, make_staff(app, clinic, "secretary"))
    assert secretary.get(path).status_code == 403
    assert secretary.get(f"/vaccination/vaccines/{uuid.uuid4()}/edit").status_code == 403
    assert admin.get(f"/vaccination/vaccines/{uuid.uuid4()}/edit").status_code == 404
    assert read(app, clinic, sa.select(Vaccine.name).where(Vaccine.id == world.vaccine_id)) == [
        ("Comirnaty",)
    ]


# --- campaigns ---------------------------------------------------------------------------------


def test_a_campaign_is_changed_then_closed(app, clinic, world, admin):
    with app.app_context(), tenant_scope(clinic.id):
        campaign = Campaign(name="Over 65s", min_age=65, attributes=[])
        db.session.add(campaign)
        db.session.commit()
        campaign_id = campaign.id
    path = f"/vaccination/campaigns/{campaign_id}/edit"
    form = {"name": "Over 60s", "vaccine": "comirnaty", "min_age": "60", "max_age": ""}
    wrong = post(admin, path, **form | {"max_age": "50", "active": "1"})
    assert wrong.status_code == 422 and 'id="e-max_age"' in wrong.text
    unknown = post(admin, path, **form | {"vaccine": "sputnik", "active": "1"})
    assert unknown.status_code == 422 and 'id="e-vaccine"' in unknown.text
    assert read(app, clinic, sa.select(Campaign.name, Campaign.min_age)) == [("Over 65s", 65)]
    opened = post(admin, path, **form | {"active": "1", "attributes": "chronic_disease"})
    assert opened.status_code == 303
    row = read(
        app,
        clinic,
        sa.select(Campaign.name, Campaign.min_age, Campaign.vaccine_id, Campaign.attributes),
    )
    assert row == [("Over 60s", 60, world.vaccine_id, ["chronic_disease"])]
    closed = post(admin, path, **form)  # "active" not ticked
    assert closed.status_code == 303
    assert read(app, clinic, sa.select(Campaign.active)) == [(False,)]
    assert len(audited(app, clinic, "vaccination.campaign.changed")) == 2


# --- centres -----------------------------------------------------------------------------------


def test_a_centre_gets_more_lines_and_its_booked_slots_more_places(
    app, clinic, world, admin, booked
):
    path = f"/vaccination/centres/{world.centre_id}/edit"
    assert "2 doses are booked ahead at this centre." in admin.get(path).text
    saved = post(admin, path, **CENTRE_FORM | {"name": "Paris 15", "lines": "3", "restricted": "1"})
    assert saved.status_code == 303
    centre = read(app, clinic, sa.select(Centre.name, Centre.restricted))
    assert centre == [("Paris 15", True)]
    assert read(app, clinic, sa.select(sa.func.count(Line.id))) == [(3,)]
    assert read(app, clinic, sa.select(SlotCount.capacity).distinct()) == [(3,)]
    assert audited(app, clinic, "vaccination.centre.changed") == [(world.centre_id,)]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("slot_minutes", "15", "its slot length cannot change"),
        ("lines", "0", "A whole number from 1 to 500"),
        ("capacity", "x", "Enter a whole number"),
        ("kind", "castle", "One of:"),
        ("name", " ", "This field is required"),
    ],
)
def test_a_wrong_centre_field_is_named_and_nothing_changes(
    app, clinic, world, admin, booked, field, value, says
):
    path = f"/vaccination/centres/{world.centre_id}/edit"
    page = post(admin, path, **CENTRE_FORM | {"address": "Elsewhere", field: value})
    assert page.status_code == 422
    assert f'id="e-{field}"' in page.text and says in page.text
    assert read(app, clinic, sa.select(Centre.address, Centre.slot_minutes)) == [
        ("1 rue de Vaugirard, Paris", 10)
    ]


def test_a_line_with_bookings_is_not_removed(app, clinic, world, admin, booked):
    # Both doses went on line 1 (the emptiest, then the first): make it the last line.
    path = f"/vaccination/centres/{world.centre_id}/edit"
    with app.app_context(), tenant_scope(clinic.id):
        booked_line = sa.select(Booking.line_id).limit(1).scalar_subquery()
        db.session.execute(sa.update(Line).where(Line.id == booked_line).values(position=3))
        db.session.commit()
    page = post(admin, path, **CENTRE_FORM | {"lines": "1"})
    assert page.status_code == 422 and 'id="e-lines"' in page.text
    assert read(app, clinic, sa.select(sa.func.count(Line.id))) == [(2,)]


def test_a_centre_with_bookings_is_not_deleted_an_unused_one_is(app, clinic, world, admin, booked):
    refused = post(admin, f"/vaccination/centres/{world.centre_id}/delete")
    assert refused.status_code == 409
    assert "Doses were booked or given at this centre" in refused.text
    with app.app_context(), tenant_scope(clinic.id):
        spare = add_centre(code="LYO-01", name="Lyon", vaccines=())
        db.session.commit()
        spare_id = spare.id
    assert post(admin, f"/vaccination/centres/{spare_id}/delete").status_code == 303
    assert read(app, clinic, sa.select(Centre.id)) == [(world.centre_id,)]
    assert audited(app, clinic, "vaccination.centre.deleted") == [(spare_id,)]


# --- adding ------------------------------------------------------------------------------------


def count(app, clinic, model):
    return read(app, clinic, sa.select(sa.func.count()).select_from(model))[0][0]


def test_a_vaccine_added_on_its_page_is_listed_and_a_new_campaign_names_it(
    app, clinic, world, admin
):
    setup_page = admin.get("/vaccination/setup").text
    assert 'href="/vaccination/vaccines/new"' in setup_page
    assert 'href="/vaccination/campaigns/new"' in setup_page
    form = VACCINE_FORM | {"code": "Vaxzevria", "name": "Vaxzevria", "min_age": "18"}
    added = post(admin, "/vaccination/vaccines/new", **form)
    assert added.status_code == 303
    (vaccine_id, doses, interval, min_age) = read(
        app,
        clinic,
        sa.select(Vaccine.id, Vaccine.doses, Vaccine.max_interval_days, Vaccine.min_age).where(
            Vaccine.code == "vaxzevria"  # codes are kept in lower case, as the CLI keeps them
        ),
    )[0]
    assert (doses, interval, min_age) == (2, 42, 18)
    assert audited(app, clinic, "vaccination.vaccine.added") == [(vaccine_id,)]
    listed = admin.get("/vaccination/setup").text
    assert "Vaxzevria" in listed and f"/vaccination/vaccines/{vaccine_id}/edit" in listed

    new_campaign = admin.get("/vaccination/campaigns/new")
    assert new_campaign.status_code == 200 and 'value="vaxzevria"' in new_campaign.text
    opened = post(
        admin,
        "/vaccination/campaigns/new",
        name="Over 60s",
        vaccine="vaxzevria",
        min_age="60",
        max_age="",
        attributes="chronic_disease",
        active="1",
    )
    assert opened.status_code == 303
    row = read(
        app,
        clinic,
        sa.select(Campaign.id, Campaign.vaccine_id, Campaign.min_age, Campaign.attributes).where(
            Campaign.active
        ),
    )
    assert [r[1:] for r in row] == [(vaccine_id, 60, ["chronic_disease"])]
    assert audited(app, clinic, "vaccination.campaign.added") == [(row[0][0],)]
    assert "Over 60s" in admin.get("/vaccination/setup").text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", "COMIRNATY"),  # the first vaccine's, whatever the case
        ("name", ""),
        ("doses", "0"),
        ("ideal_days", "7"),  # below the minimum
        ("max_age", "abc"),
    ],
)
def test_a_wrong_new_vaccine_is_refused_naming_the_field(app, clinic, world, admin, field, value):
    page = post(admin, "/vaccination/vaccines/new", **VACCINE_FORM | {"code": "new", field: value})
    assert page.status_code == 422
    assert f'id="e-{field}"' in page.text and "New vaccine" in page.text
    assert count(app, clinic, Vaccine) == 2
    assert audited(app, clinic, "vaccination.vaccine.added") == []


@pytest.mark.parametrize(
    ("field", "form"),
    [
        ("name", {"name": " "}),
        ("vaccine", {"vaccine": "sputnik"}),
        ("max_age", {"min_age": "65", "max_age": "60"}),
        ("attributes", {"attributes": "astrology"}),
    ],
)
def test_a_wrong_new_campaign_is_refused_naming_the_field(app, clinic, world, admin, field, form):
    page = post(admin, "/vaccination/campaigns/new", **{"name": "Over 65s", "active": "1"} | form)
    assert page.status_code == 422 and f'id="e-{field}"' in page.text
    assert count(app, clinic, Campaign) == 0


def test_a_closed_campaign_can_be_prepared(app, clinic, world, admin):
    assert post(admin, "/vaccination/campaigns/new", name="Teachers").status_code == 303
    assert read(app, clinic, sa.select(Campaign.name, Campaign.active, Campaign.vaccine_id)) == [
        ("Teachers", False, None)
    ]


def test_a_centre_added_on_its_page_offers_slots_once_its_opening_days_are_imported(
    app, clinic, world, admin
):
    assert 'href="/vaccination/centres/new"' in admin.get("/vaccination/setup").text
    form = CENTRE_FORM | {"code": "LYO-01", "name": "Lyon Gerland", "kind": "mega", "lines": "3"}
    added = post(admin, "/vaccination/centres/new", **form | {"capacity": "2", "restricted": "1"})
    assert added.status_code == 303
    ((centre_id, kind, restricted, capacity),) = read(
        app,
        clinic,
        sa.select(Centre.id, Centre.kind, Centre.restricted, Centre.capacity).where(
            Centre.code == "LYO-01"
        ),
    )
    assert (kind.value, restricted, capacity) == ("mega", True, 2)
    lines = read(app, clinic, sa.select(Line.position).where(Line.centre_id == centre_id))
    assert sorted(lines) == [(1,), (2,), (3,)]
    assert audited(app, clinic, "vaccination.centre.added") == [(centre_id,)]
    assert "Lyon Gerland" in admin.get("/vaccination/setup").text

    day = (today() + timedelta(days=3)).isoformat()
    rows = (
        "code,name,kind,address,restricted,lines,capacity,slot_minutes,day,opens,closes,"
        f"vaccine,doses\nLYO-01,Lyon Gerland,mega,,yes,3,2,10,{day},09:00,10:00,comirnaty,100\n"
    )
    imported = admin.post(
        "/vaccination/import",
        data={"csrf_token": admin.token, "file": (io.BytesIO(rows.encode()), "lyon.csv")},
        content_type="multipart/form-data",
    )
    assert imported.status_code == 302
    slots = admin.get(
        "/api/v1/vaccination/slots",
        headers={"Authorization": f"Bearer {world.token}"},
        query_string={
            "centre": str(centre_id),
            "vaccine": str(world.vaccine_id),
            "from": day,
            "to": day,
        },
    ).json["slots"]
    assert len(slots) == 6 and all(s["free"] == 6 for s in slots)  # 3 lines x 2 places


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", "PAR-01"),  # the first centre's
        ("kind", "castle"),
        ("lines", "0"),
        ("capacity", "1001"),
        ("slot_minutes", ""),
    ],
)
def test_a_wrong_new_centre_is_refused_naming_the_field(app, clinic, world, admin, field, value):
    form = CENTRE_FORM | {"code": "LYO-01", field: value}
    page = post(admin, "/vaccination/centres/new", **form)
    assert page.status_code == 422 and f'id="e-{field}"' in page.text
    assert count(app, clinic, Centre) == 1 and count(app, clinic, Line) == 2
    assert audited(app, clinic, "vaccination.centre.added") == []


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/vaccination/vaccines/new", VACCINE_FORM | {"code": "other"}),
        ("/vaccination/campaigns/new", {"name": "Over 65s", "active": "1"}),
        ("/vaccination/centres/new", CENTRE_FORM | {"code": "LYO-01"}),
        (
            "/vaccination/centres/{centre}/days",
            {"day": "2099-01-01", "opens": "9:00", "closes": "10:00"},
        ),
        (
            "/vaccination/centres/{centre}/stock",
            {"vaccine": "comirnaty", "day": "2099-01-01", "doses": "3"},
        ),
    ],
)
def test_only_an_admin_adds_and_with_the_forms_csrf_token(app, clinic, world, admin, path, form):
    path = path.format(centre=world.centre_id)
    assert admin.post(path, data=form).status_code == 400
    secretary = client_for(app, clinic.slug)
    log_in(secretary, make_staff(app, clinic, "secretary"))
    assert secretary.get(path).status_code == 403
    token = csrf_token(secretary, "/")
    assert secretary.post(path, data={"csrf_token": token, **form}).status_code == 403
    assert (count(app, clinic, Vaccine), count(app, clinic, Campaign)) == (2, 0)
    assert count(app, clinic, Centre) == 1
    assert (count(app, clinic, OpeningHours), count(app, clinic, Stock)) == (49, 98)


def test_what_is_added_sees_only_the_clinics_own_vaccines_and_codes(app, clinic, world, admin):
    other = make_clinic(app, "other", plugins=PLUGINS)
    with app.app_context(), tenant_scope(other.id):
        db.session.add(Vaccine(code="sputnik", name="Sputnik V", doses=2))
        db.session.commit()
    assert 'value="sputnik"' not in admin.get("/vaccination/campaigns/new").text
    refused = post(admin, "/vaccination/campaigns/new", name="Over 65s", vaccine="sputnik")
    assert refused.status_code == 422 and 'id="e-vaccine"' in refused.text
    # Codes are the clinic's own: another clinic's vaccine code is free here.
    added = post(admin, "/vaccination/vaccines/new", **VACCINE_FORM | {"code": "sputnik"})
    assert added.status_code == 303
    assert count(app, clinic, Campaign) == 0 and count(app, clinic, Vaccine) == 3
    assert count(app, other, Vaccine) == 1


# --- a centre's opening days and stock ---------------------------------------------------------


def days_path(world, end=""):
    return f"/vaccination/centres/{world.centre_id}/{end or 'days'}"


def named(page, field) -> bool:
    """The form names the field; a NUL byte is refused before any form, naming it too."""
    return f'id="e-{field}"' in page.text or f"The field {field} holds" in page.text


def openings(app, clinic, day):
    return read(
        app,
        clinic,
        sa.select(OpeningHours.opens, OpeningHours.closes).where(OpeningHours.day == day),
    )


def test_an_opening_day_and_its_stock_added_on_the_centres_page_offer_slots(
    app, clinic, world, admin
):
    assert days_path(world) in admin.get(f"/vaccination/centres/{world.centre_id}/edit").text
    day = today() + timedelta(days=60)  # the world's centre opens on days 1 to 49
    added = post(admin, days_path(world), day=day.isoformat(), opens="10:00", closes="11:00")
    assert added.status_code == 303
    assert openings(app, clinic, day) == [(time(10), time(11))]
    stocked = post(
        admin, days_path(world, "stock"), vaccine="comirnaty", day=day.isoformat(), doses="4"
    )
    assert stocked.status_code == 303
    listed = admin.get(days_path(world)).text
    assert "10:00–11:00" in listed and "4 / 4" in listed
    slots = admin.get(
        "/api/v1/vaccination/slots",
        headers={"Authorization": f"Bearer {world.token}"},
        query_string={
            "centre": str(world.centre_id),
            "vaccine": str(world.vaccine_id),
            "from": day.isoformat(),
            "to": day.isoformat(),
        },
    ).json["slots"]
    assert len(slots) == 6 and all(s["free"] == 2 for s in slots)  # 2 lines, 4 doses left
    details = read(
        app,
        clinic,
        sa.select(AuditEvent.action, AuditEvent.detail).where(
            AuditEvent.action.in_(("vaccination.opening.added", "vaccination.stock.set"))
        ),
    )
    assert sorted(a for a, _d in details) == ["vaccination.opening.added", "vaccination.stock.set"]


@pytest.mark.parametrize(
    ("field", "form"),
    [
        ("day", {"day": "2020-01-01"}),  # passed
        ("day", {"day": "2026-13-01"}),
        ("day", {"day": "a\x00b"}),
        ("opens", {"opens": "25:00"}),
        ("opens", {"opens": "10:00\x00"}),
        ("closes", {"closes": "09:00"}),  # before it opens
        ("opens", {"opens": "09:30", "closes": "11:30"}),  # over the day's opening
    ],
)
def test_a_wrong_opening_day_is_refused_naming_the_field(app, clinic, world, admin, field, form):
    day = today() + timedelta(days=3)  # open 09:00 to 12:00 already
    wanted = {"day": (day + timedelta(days=60)).isoformat(), "opens": "10:00", "closes": "11:00"}
    if form.get("closes") == "11:30":
        wanted["day"] = day.isoformat()
    page = post(admin, days_path(world), **wanted | form)
    assert page.status_code == 422 and named(page, field)
    assert count(app, clinic, OpeningHours) == 49
    assert audited(app, clinic, "vaccination.opening.added") == []


@pytest.mark.parametrize(
    ("field", "form"),
    [
        ("doses", {"doses": "1000001"}),
        ("doses", {"doses": "9" * 30}),
        ("doses", {"doses": "-1"}),
        ("vaccine", {"vaccine": "sputnik"}),
        ("vaccine", {"vaccine": "a\x00"}),
        ("day", {"day": "2020-01-01"}),
    ],
)
def test_a_wrong_stock_is_refused_naming_the_field(app, clinic, world, admin, field, form):
    day = (today() + timedelta(days=3)).isoformat()
    wanted = {"vaccine": "comirnaty", "day": day, "doses": "7"}
    page = post(admin, days_path(world, "stock"), **wanted | form)
    assert page.status_code == 422 and named(page, field)
    assert read(app, clinic, sa.select(Stock.doses).distinct()) == [(100,)]


def test_an_opening_with_bookings_stays_one_without_changes_and_goes(
    app, clinic, world, admin, booked
):
    day = today() + timedelta(days=2)  # dose 1 is booked at 09:00
    edit = days_path(world, f"days/edit?day={day.isoformat()}&opens=09:00")
    assert 'value="12:00"' in admin.get(edit).text
    refused = post(admin, edit, day=day.isoformat(), opens="09:00", closes="10:00")
    assert refused.status_code == 409 and "Doses are booked in these hours" in refused.text
    removed = post(admin, days_path(world, "days/delete"), day=day.isoformat(), opens="09:00")
    assert removed.status_code == 409 and "Doses are booked in these hours" in removed.text
    assert openings(app, clinic, day) == [(time(9), time(12))]
    # Dose 2 stays under its 12 doses booked; a free day moves and goes.
    second = (today() + timedelta(days=30)).isoformat()
    low = post(admin, days_path(world, "stock"), vaccine="comirnaty", day=second, doses="0")
    assert low.status_code == 422 and "1 dose is booked that day" in low.text
    free = today() + timedelta(days=5)
    edit = days_path(world, f"days/edit?day={free.isoformat()}&opens=09:00")
    moved = post(admin, edit, day=free.isoformat(), opens="14:00", closes="16:30")
    assert moved.status_code == 303
    assert openings(app, clinic, free) == [(time(14), time(16, 30))]
    gone = post(admin, days_path(world, "days/delete"), day=free.isoformat(), opens="14:00")
    assert gone.status_code == 303 and openings(app, clinic, free) == []
    assert len(audited(app, clinic, "vaccination.opening.changed")) == 1
    assert len(audited(app, clinic, "vaccination.opening.deleted")) == 1
    missing = days_path(world, f"days/edit?day={free.isoformat()}&opens=14:00")
    assert admin.get(missing).status_code == 404
