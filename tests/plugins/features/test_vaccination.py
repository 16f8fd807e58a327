"""Vaccination: both doses booked at once or neither, inside the vaccine's window, within
capacity and stock, for eligible patients only; cancelling and moving; the CSV import."""

import contextlib
import html
import io
import re
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot

from core.clinic.models import AuditEvent, Patient
from core.db import db
from core.delivery.models import Message, MessageStatus
from plugins.features.vaccination.models import (
    Booking,
    BookingStatus,
    Centre,
    OpeningHours,
    SlotCount,
    Stock,
)
from tenants.scoping import tenant_scope
from tests.plugins.features.vaccination_world import (
    PARIS,
    PLUGINS,
    add_campaign,
    at,
    build,
    today,
)
from tests.worlds import client_for, csrf_token, make_clinic, make_patient


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", plugins=PLUGINS)


@pytest.fixture
def world(app, clinic):
    return build(app, clinic)


@pytest.fixture
def api(app, clinic, world):
    client = client_for(app, clinic.slug)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {world.token}"
    return client


@pytest.fixture
def patient(app, clinic):
    from datetime import date

    return make_patient(app, clinic, birth_date=date(1950, 5, 4))


def book(api, world, patient, first, second=None, **extra):
    body = {
        "patient": str(patient.id),
        "centre": str(world.centre_id),
        "vaccine": str(world.vaccine_id),
        "first": first.isoformat(),
        **({"second": second.isoformat()} if second else {}),
        **extra,
    }
    return api.post("/api/v1/vaccination/bookings", json=body)


def counts(app, clinic):
    """What was written: bookings, places taken, doses promised."""
    with app.app_context(), tenant_scope(clinic.id):
        return (
            db.session.scalar(sa.select(sa.func.count()).select_from(Booking)),
            db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(SlotCount.booked), 0))),
            db.session.scalar(sa.select(sa.func.sum(Stock.booked))),
        )


def day(n):
    return today() + timedelta(days=n)


# --- booking both doses -----------------------------------------------------------------------


def test_both_doses_are_booked_at_once_inside_the_window(api, world, patient, app, clinic):
    answer = book(api, world, patient, at(day(2), 9), at(day(30), 9, 10))
    assert answer.status_code == 201, answer.text
    doses = answer.json["doses"]
    assert [d["dose"] for d in doses] == [1, 2]
    assert doses[0]["series"] == doses[1]["series"]
    assert counts(app, clinic) == (2, 2, 2)


@pytest.mark.parametrize(
    ("second_day", "vaccine_days"),
    [(2 + 20, "21"), (2 + 43, "42")],  # a day too early, a day too late
)
def test_a_second_dose_outside_the_window_books_nothing(
    api, world, patient, app, clinic, second_day, vaccine_days
):
    answer = book(api, world, patient, at(day(2), 9), at(day(second_day), 9))
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "second"
    assert counts(app, clinic) == (0, 0, 0)


def test_the_window_edges_are_inside(api, world, patient):
    assert book(api, world, patient, at(day(2), 9), at(day(2 + 21), 9)).status_code == 201


def test_another_vaccine_for_dose_two_is_refused(api, world, patient, app, clinic):
    answer = book(
        api, world, patient, at(day(2), 9), at(day(30), 9), second_vaccine=str(world.single_id)
    )
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "second_vaccine"
    assert counts(app, clinic) == (0, 0, 0)


def test_a_slot_in_the_past_is_refused(api, world, patient, app, clinic):
    answer = book(api, world, patient, at(day(-1), 9), at(day(25), 9))
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "first"
    assert counts(app, clinic) == (0, 0, 0)


def test_a_time_that_is_no_slot_is_refused(api, world, patient):
    answer = book(api, world, patient, at(day(2), 9, 5), at(day(25), 9))
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "first"
    answer = book(api, world, patient, at(day(2), 9), at(day(25), 13))  # after closing
    assert answer.json["error"]["field"] == "second"


def test_a_single_dose_vaccine_books_one_dose(api, world, patient):
    body = {"vaccine": str(world.single_id)}
    answer = book(api, world, patient, at(day(3), 10), **body)
    assert answer.status_code == 201
    assert [d["dose"] for d in answer.json["doses"]] == [1]


def test_when_dose_two_is_full_dose_one_is_not_booked_either(api, world, app, clinic):
    first_patients = [make_patient(app, clinic, phone=f"06123400{n:02d}") for n in range(2)]
    for p in first_patients:  # both lines of the dose-2 slot taken
        assert book(api, world, p, at(day(3), 9, 30), at(day(30), 11)).status_code == 201
    late = make_patient(app, clinic, phone="0612340099")
    answer = book(api, world, late, at(day(2), 9), at(day(30), 11))
    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "full"
    assert answer.json["error"]["field"] == "second"
    assert counts(app, clinic) == (4, 4, 4)  # the dose-1 place at day 2 went back
    assert book(api, world, late, at(day(2), 9), at(day(30), 11, 10)).status_code == 201


def test_a_patient_books_a_vaccine_once(api, world, patient):
    assert book(api, world, patient, at(day(2), 9), at(day(30), 9)).status_code == 201
    again = book(api, world, patient, at(day(3), 9), at(day(31), 9))
    assert again.status_code == 409
    assert again.json["error"]["field"] == "vaccine"


def test_stock_caps_the_slots_offered_and_booked(app, clinic, api, world):
    with app.app_context(), tenant_scope(clinic.id):
        db.session.execute(sa.update(Stock).where(Stock.day == day(4)).values(doses=1))
        db.session.commit()
    query = {"centre": str(world.centre_id), "vaccine": str(world.vaccine_id)}
    slots = api.get(
        "/api/v1/vaccination/slots", query_string={**query, "from": day(4), "to": day(4)}
    ).json["slots"]
    assert len(slots) == 18 and all(s["free"] == 1 for s in slots)  # 2 lines, stock of 1
    a = make_patient(app, clinic, phone="0612340001")
    b = make_patient(app, clinic, phone="0612340002")
    assert book(api, world, a, at(day(4), 9), at(day(30), 9)).status_code == 201
    refused = book(api, world, b, at(day(4), 10), at(day(30), 10))
    assert refused.status_code == 409 and refused.json["error"]["code"] == "full"
    assert "dose" in refused.json["error"]["message"]
    slots = api.get(
        "/api/v1/vaccination/slots", query_string={**query, "from": day(4), "to": day(4)}
    ).json["slots"]
    assert slots == []


def test_capacity_is_lines_times_places_per_line(app, clinic, api, world):
    patients = [make_patient(app, clinic, phone=f"06123401{n:02d}") for n in range(3)]
    answers = [
        book(api, world, p, at(day(5), 9), at(day(30), 9, 20 + 10 * n))
        for n, p in enumerate(patients)
    ]
    assert [a.status_code for a in answers] == [201, 201, 409]
    lines = {a.json["doses"][0]["line"] for a in answers[:2]}
    assert len(lines) == 2  # one patient per line


# --- eligibility ------------------------------------------------------------------------------


def test_the_vaccine_age_limit_is_checked_with_the_reason(app, clinic, api, world):
    from datetime import date

    young = make_patient(
        app,
        clinic,
        phone="0612340003",
        birth_date=date.today().replace(year=date.today().year - 16),
    )
    answer = book(api, world, young, at(day(3), 10), vaccine=str(world.single_id))
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "vaccine"
    assert "18" in answer.json["error"]["message"]
    assert counts(app, clinic) == (0, 0, 0)


def test_a_restricted_centre_takes_only_open_campaigns(app, clinic, api, world, patient):
    from datetime import date

    with app.app_context(), tenant_scope(clinic.id):
        db.session.execute(sa.update(Centre).values(restricted=True))
        db.session.commit()
    add_campaign(app, clinic, "Over 75s", min_age=75)
    answer = book(api, world, patient, at(day(2), 9), at(day(30), 9))  # born 1950: 76
    assert answer.status_code == 201
    younger = make_patient(app, clinic, phone="0612340004", birth_date=date(1980, 1, 1))
    refused = book(api, world, younger, at(day(2), 9, 10), at(day(30), 9, 10))
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "centre"
    assert "Over 75s" in refused.json["error"]["message"]
    add_campaign(app, clinic, "Chronic disease", attributes=["chronic_disease"])
    with app.app_context(), tenant_scope(clinic.id):
        db.session.get(Patient, (clinic.id, younger.id)).attributes = ["chronic_disease"]
        db.session.commit()
    assert book(api, world, younger, at(day(2), 9, 10), at(day(30), 9, 10)).status_code == 201


def test_without_a_birth_date_an_age_limited_vaccine_asks_for_it(app, clinic, api, world):
    unknown = make_patient(app, clinic, phone="0612340005")
    answer = book(api, world, unknown, at(day(3), 10), vaccine=str(world.single_id))
    assert answer.status_code == 422
    assert answer.json["error"]["field"] == "birth_date"


# --- cancelling and moving --------------------------------------------------------------------


def test_cancelling_frees_both_places_and_doses(api, world, patient, app, clinic):
    series = book(api, world, patient, at(day(2), 9), at(day(30), 9)).json["series"]
    answer = api.post(
        f"/api/v1/vaccination/bookings/{series}/cancel", json={"patient": str(patient.id)}
    )
    assert answer.status_code == 200
    assert {d["status"] for d in answer.json["doses"]} == {"cancelled"}
    assert counts(app, clinic) == (2, 0, 0)
    again = api.post(
        f"/api/v1/vaccination/bookings/{series}/cancel", json={"patient": str(patient.id)}
    )
    assert again.status_code == 200 and counts(app, clinic) == (2, 0, 0)


def test_moving_dose_two_stays_in_its_window(api, world, patient, app, clinic):
    doses = book(api, world, patient, at(day(2), 9), at(day(30), 9)).json["doses"]
    url = f"/api/v1/vaccination/bookings/dose/{doses[1]['id']}/move"
    too_late = api.post(
        url, json={"patient": str(patient.id), "starts_at": at(day(45), 9).isoformat()}
    )
    assert too_late.status_code == 422 and too_late.json["error"]["field"] == "starts_at"
    moved = api.post(
        url, json={"patient": str(patient.id), "starts_at": at(day(40), 11).isoformat()}
    )
    assert moved.status_code == 200, moved.text
    assert counts(app, clinic) == (2, 2, 2)
    with app.app_context(), tenant_scope(clinic.id):
        taken = dict(db.session.execute(sa.select(SlotCount.starts_at, SlotCount.booked)).all())
    assert taken[at(day(30), 9)] == 0 and taken[at(day(40), 11)] == 1


def test_moving_dose_one_keeps_dose_two_in_its_window(api, world, patient):
    doses = book(api, world, patient, at(day(2), 9), at(day(23), 9)).json["doses"]
    url = f"/api/v1/vaccination/bookings/dose/{doses[0]['id']}/move"
    answer = api.post(
        url, json={"patient": str(patient.id), "starts_at": at(day(5), 9).isoformat()}
    )
    assert answer.status_code == 422 and answer.json["error"]["field"] == "starts_at"
    answer = api.post(
        url, json={"patient": str(patient.id), "starts_at": at(day(1), 9).isoformat()}
    )
    assert answer.status_code == 200


# --- the CSV import ---------------------------------------------------------------------------

HEADER = (
    "code,name,kind,address,restricted,lines,capacity,slot_minutes,day,opens,closes,vaccine,doses\n"
)


def csv_rows(n_centres=3, days=3, vaccine="comirnaty", start=1):
    rows = [HEADER]
    for c in range(n_centres):
        for d in range(days):
            rows.append(
                f"C{c:04d},Centre {c},centre,{c} rue Test,no,2,1,10,"
                f"{day(start + d).isoformat()},09:00,12:00,{vaccine},50\n"
            )
    return "".join(rows)


def test_the_command_imports_every_row(app, clinic, world, runner, tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text(csv_rows())
    result = runner.invoke(args=["vaccination", "import-centres", str(path), "--tenant", "demo"])
    assert result.exit_code == 0, result.output
    assert "3 centres, 9 opening days" in result.output
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Centre)) == 4
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OpeningHours)) == 49 + 9


def test_a_large_import_refreshes_the_centres_statistics_first(app, clinic, world):
    # From 100 new centres on, their statistics are refreshed before the rows are written
    # (as the app's role, through vaccination_analyze_centres()): without them, PostgreSQL
    # checked each row's centre by reading the clinic's centres. Autovacuum cannot have
    # counted them: they are not committed yet.
    from plugins.features.vaccination import importer

    with app.app_context(), tenant_scope(clinic.id):
        report = importer.run(clinic, importer.read(io.StringIO(csv_rows(n_centres=120, days=2))))
        assert not report.errors and report.centres == 120 and report.openings == 240
        counted = db.session.scalar(
            sa.text("SELECT reltuples FROM pg_class WHERE relname = 'vaccination_centres'")
        )
        assert counted == 1 + 120
        db.session.rollback()


def test_a_wrong_row_imports_nothing_and_names_it(app, clinic, world, runner, tmp_path):
    text = csv_rows() + f"C9999,Centre X,centre,,no,1,1,10,{day(2)},09:00,12:00,sputnik,10\n"
    text += f"C9998,Centre Y,castle,,no,1,1,10,{day(2)},09:00,12:00,comirnaty,10\n"
    path = tmp_path / "centres.csv"
    path.write_text(text)
    result = runner.invoke(args=["vaccination", "import-centres", str(path), "--tenant", "demo"])
    assert result.exit_code == 2
    assert "line 11: vaccine: Unknown vaccine: sputnik." in result.output
    assert "line 12: kind:" in result.output
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Centre)) == 1


def test_the_import_page_reports_wrong_rows_and_imports_nothing(app, clinic, world):
    from tests.worlds import csrf_token, log_in, make_staff

    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    token = csrf_token(client, "/vaccination/import")
    bad = csv_rows(vaccine="sputnik").encode()
    page = client.post(
        "/vaccination/import",
        data={"csrf_token": token, "file": (io.BytesIO(bad), "centres.csv")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 422
    assert "sputnik" in page.text
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Centre)) == 1
    page = client.post(
        "/vaccination/import",
        data={"csrf_token": token, "file": (io.BytesIO(csv_rows().encode()), "centres.csv")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 302
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Centre)) == 4


def test_doses_given_are_marked_with_their_batch(app, clinic, world, api, patient):
    from tests.worlds import csrf_token, log_in, make_staff

    doses = book(api, world, patient, at(day(2), 9), at(day(30), 9)).json["doses"]
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    page = client.get(f"/vaccination?centre={world.centre_id}&date={day(2).isoformat()}")
    assert page.status_code == 200 and "Durand" in page.text
    token = csrf_token(client, "/vaccination")
    empty = client.post(
        f"/vaccination/dose/{doses[0]['id']}/given", data={"csrf_token": token, "batch": ""}
    )
    assert empty.status_code == 302
    answer = client.post(
        f"/vaccination/dose/{doses[0]['id']}/given", data={"csrf_token": token, "batch": "FK1234"}
    )
    assert answer.status_code == 302
    with app.app_context(), tenant_scope(clinic.id):
        given = db.session.get(Booking, (clinic.id, __import__("uuid").UUID(doses[0]["id"])))
        assert given.status == BookingStatus.DONE and given.batch == "FK1234"


# --- the patient's pages ----------------------------------------------------------------------

MOBILE = "+33612345678"
CODE = re.compile(r"\b(\d{6})\b")


def logged_in_patient(app, clinic, patient):
    """The patient's browser, signed up and logged in by a code sent to their phone (the otp
    feature)."""
    client = client_for(app, clinic.slug)
    client.post("/language", data={"lang": "en", "csrf_token": csrf_token(client, "/me/login")})
    asked = client.post("/me/api/code", json={"phone": MOBILE})
    assert asked.status_code == 202, asked.text
    with app.app_context(), tenant_scope(clinic.id):
        texts = [
            m.content["text"]
            for m in db.session.scalars(sa.select(Message).order_by(Message.created_at))
        ]
    proved = client.post(
        "/me/api/code/verify",
        json={"challenge": asked.json["challenge"], "code": CODE.search(texts[-1])[1]},
    )
    assert proved.json == {"next": "sign_up"}  # the first time: their record is linked
    signed = client.post(
        "/me/api/signup",
        json={
            "first_name": "Jeanne",
            "last_name": "Durand",
            "birth_date": patient.birth_date.isoformat(),
            "language": "en",
        },
    )
    assert signed.status_code == 201 and signed.json["linked"], signed.text
    return client


def radio_values(html_text: str, name: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'name="{name}" value="([^"]+)"', html_text)]


def test_a_patient_books_both_doses_on_the_page_then_cancels(app, clinic, world, patient):
    browser = logged_in_patient(app, clinic, patient)
    home = browser.get("/me/")
    assert "Book a vaccination" in home.text
    page = browser.get("/me/vaccination")
    assert page.status_code == 200 and "Centre Paris 15" in page.text
    query = {"centre": str(world.centre_id), "vaccine": str(world.vaccine_id)}
    step1 = browser.get("/me/vaccination/book", query_string=query)
    firsts = radio_values(step1.text, "first")
    assert firsts and datetime.fromisoformat(firsts[0]) > datetime.now(UTC)
    step2 = browser.get("/me/vaccination/book", query_string={**query, "first": firsts[0]})
    seconds = radio_values(step2.text, "second")
    first_day = datetime.fromisoformat(firsts[0]).astimezone(PARIS).date()
    second_days = {datetime.fromisoformat(s).astimezone(PARIS).date() for s in seconds}
    assert min(second_days) == first_day + timedelta(days=21)  # the window's first day
    token = csrf_token(browser, "/me/vaccination")
    done = browser.post(
        "/me/vaccination/book",
        data={**query, "first": firsts[0], "second": seconds[3], "csrf_token": token},
    )
    assert done.status_code == 302
    page = browser.get("/me/vaccination")
    assert "dose 1" in page.text and "dose 2" in page.text
    assert counts(app, clinic) == (2, 2, 2)
    series = re.search(r"/me/vaccination/([0-9a-f-]{36})/cancel", page.text)[1]
    browser.post(f"/me/vaccination/{series}/cancel", data={"csrf_token": token})
    assert counts(app, clinic) == (2, 0, 0)


def test_the_page_says_why_a_patient_may_not_book(app, clinic, world, patient):
    with app.app_context(), tenant_scope(clinic.id):
        db.session.execute(sa.update(Centre).values(restricted=True))
        db.session.commit()
    add_campaign(app, clinic, "Health workers", attributes=["needs_support"])
    browser = logged_in_patient(app, clinic, patient)
    query = {"centre": str(world.centre_id), "vaccine": str(world.vaccine_id)}
    token = csrf_token(browser, "/me/vaccination")
    answer = browser.post(
        "/me/vaccination/book",
        data={
            **query,
            "first": at(day(2), 9).isoformat(),
            "second": at(day(30), 9).isoformat(),
            "csrf_token": token,
        },
    )
    assert answer.status_code == 422
    assert "Health workers" in html.unescape(answer.text)
    assert counts(app, clinic) == (0, 0, 0)


def test_the_patient_pages_need_a_patient_session(app, clinic, world):
    assert client_for(app, clinic.slug).get("/me/vaccination").status_code == 401


def test_a_patient_moves_dose_two_inside_its_window(app, clinic, world, patient, api):
    doses = book(api, world, patient, at(day(2), 9), at(day(30), 9)).json["doses"]
    browser = logged_in_patient(app, clinic, patient)
    page = browser.get(f"/me/vaccination/dose/{doses[1]['id']}/move")
    offered = {
        datetime.fromisoformat(v).astimezone(PARIS).date()
        for v in radio_values(page.text, "starts_at")
    }
    assert offered and min(offered) >= day(23) and max(offered) <= day(44)
    token = csrf_token(browser, "/me/vaccination")
    wrong = browser.post(
        f"/me/vaccination/dose/{doses[1]['id']}/move",
        data={"starts_at": at(day(46), 9).isoformat(), "csrf_token": token},
    )
    assert wrong.status_code == 422
    moved = browser.post(
        f"/me/vaccination/dose/{doses[1]['id']}/move",
        data={"starts_at": at(day(33), 10).isoformat(), "csrf_token": token},
    )
    assert moved.status_code == 302


# --- reminders and the summary ----------------------------------------------------------------


def test_each_dose_gets_its_reminder_the_day_before_and_cancelling_withdraws_them(
    app, clinic, world, patient, api
):
    answer = book(api, world, patient, at(day(2), 9), at(day(30), 9))
    with app.app_context(), tenant_scope(clinic.id):
        reminders = db.session.scalars(
            sa.select(Message).where(Message.purpose == "reminder").order_by(Message.not_before)
        ).all()
        assert [m.not_before for m in reminders] == [
            at(day(2), 9) - timedelta(days=1),
            at(day(30), 9) - timedelta(days=1),
        ]
        assert "dose 2" in reminders[1].content["text"]
    api.post(
        f"/api/v1/vaccination/bookings/{answer.json['series']}/cancel",
        json={"patient": str(patient.id)},
    )
    with app.app_context(), tenant_scope(clinic.id):
        statuses = db.session.scalars(
            sa.select(Message.status).where(Message.purpose == "reminder")
        ).all()
        assert set(statuses) == {MessageStatus.CANCELLED}


def test_the_summary_pdf_lists_the_doses_given(app, clinic, world, patient, api):
    doses = book(api, world, patient, at(day(2), 9), at(day(30), 9)).json["doses"]
    with app.app_context(), tenant_scope(clinic.id):
        from plugins.features.vaccination import staff

        staff.mark_given(clinic, uuid.UUID(doses[0]["id"]), "FK1234")
        db.session.commit()
    browser = logged_in_patient(app, clinic, patient)
    pdf = browser.get("/me/vaccination/summary.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    text = pdf.data.decode("latin-1")
    assert "FK1234" in text or b"FK1234" in zlib_text(pdf.data)


def zlib_text(data: bytes) -> bytes:
    """The PDF's page streams, inflated."""
    found = b""
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        with contextlib.suppress(zlib.error):
            found += zlib.decompress(stream)
    return found


# --- FHIR -------------------------------------------------------------------------------------


def test_doses_given_read_as_fhir_immunizations(app, clinic, world, patient, api):
    doses = book(api, world, patient, at(day(2), 9), at(day(30), 9)).json["doses"]
    with app.app_context(), tenant_scope(clinic.id):
        from plugins.features.vaccination import staff

        staff.mark_given(clinic, uuid.UUID(doses[0]["id"]), "FK1234")
        db.session.commit()
    answer = api.get(f"/api/v1/fhir/Immunization?patient=Patient/{patient.id}")
    assert answer.status_code == 200
    assert answer.mimetype == "application/fhir+json"
    bundle = Bundle.model_validate(answer.json)
    assert bundle.total == 1  # dose 2 is not given yet
    resource = Immunization.model_validate(answer.json["entry"][0]["resource"])
    assert resource.lotNumber == "FK1234"
    assert resource.protocolApplied[0].doseNumberPositiveInt == 1
    assert resource.vaccineCode.text == "Comirnaty"
    one = api.get(f"/api/v1/fhir/Immunization/{doses[0]['id']}")
    assert Immunization.model_validate(one.json).id == doses[0]["id"]
    with app.app_context(), tenant_scope(clinic.id):
        actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert "vaccination.immunization.search" in actions
    assert "vaccination.immunization.read" in actions
    missing = api.get("/api/v1/fhir/Immunization")
    assert missing.status_code == 422
    assert missing.json["resourceType"] == "OperationOutcome"
    assert missing.json["issue"][0]["expression"] == ["patient"]


def test_centres_and_slots_read_as_fhir_schedules_and_slots(app, clinic, world, patient, api):
    book(api, world, patient, at(day(2), 9), at(day(30), 9))
    schedules = api.get("/api/v1/fhir/Schedule").json
    Bundle.model_validate(schedules)
    schedule = Schedule.model_validate(schedules["entry"][0]["resource"])
    assert schedule.id == str(world.centre_id)
    answer = api.get(f"/api/v1/fhir/Slot?schedule=Schedule/{world.centre_id}&start={day(2)}")
    Bundle.model_validate(answer.json)
    found = [Slot.model_validate(e["resource"]) for e in answer.json["entry"]]
    assert len(found) == 18  # 09:00 to 12:00, every 10 minutes
    assert found[0].status == "free"  # one line of two is taken
    assert api.get(
        f"/api/v1/fhir/Slot?schedule={world.centre_id}&start={day(2)}&end={day(20)}"
    ).json["issue"][0]["expression"] == ["end"]


# --- setting up vaccines and campaigns --------------------------------------------------------


def test_operators_add_a_vaccine_and_a_campaign_by_command(app, clinic, runner):
    base = ["vaccination", "add-vaccine", "--tenant", "demo", "--code", "Nuvaxovid"]
    bad = runner.invoke(args=[*base, "--name", "Nuvaxovid", "--min-days", "21", "--max-days", "7"])
    assert bad.exit_code == 2 and "max_days" in bad.output
    done = runner.invoke(
        args=[
            *base,
            "--name",
            "Nuvaxovid",
            "--min-days",
            "21",
            "--max-days",
            "42",
            "--min-age",
            "12",
        ]
    )
    assert done.exit_code == 0, done.output
    assert "nuvaxovid: 2 doses, 21 to 42 days apart (ideally 21)" in done.output
    wrong = runner.invoke(
        args=["vaccination", "add-campaign", "--tenant", "demo", "--name", "X", "--vaccine", "nope"]
    )
    assert wrong.exit_code == 2 and "Unknown vaccine: nope" in wrong.output
    opened = runner.invoke(
        args=[
            "vaccination",
            "add-campaign",
            "--tenant",
            "demo",
            "--name",
            "Chronic disease",
            "--vaccine",
            "nuvaxovid",
            "--attribute",
            "chronic_disease",
        ]
    )
    assert opened.exit_code == 0, opened.output


# --- the waitlist -----------------------------------------------------------------------------


def test_a_freed_slot_is_offered_to_the_first_waiting_and_held_for_them(app, clinic, runner):
    from datetime import time

    full = build(app, clinic, lines=1, days=(2, 30), opens=time(9), closes=time(9, 10))
    client = client_for(app, clinic.slug)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {full.token}"
    from datetime import date

    first = make_patient(app, clinic, phone="0612340010", birth_date=date(1950, 1, 1))
    waiting = make_patient(app, clinic, birth_date=date(1950, 5, 4))  # the MOBILE's owner
    later = make_patient(app, clinic, phone="0612340011", birth_date=date(1950, 1, 1))
    series = book(client, full, first, at(day(2), 9), at(day(30), 9)).json["series"]
    browser = logged_in_patient(app, clinic, waiting)
    token = csrf_token(browser, "/me/vaccination")
    query = {"centre": str(full.centre_id), "vaccine": str(full.vaccine_id)}
    page = browser.get("/me/vaccination/book", query_string=query)
    assert "Join the waitlist" in page.text  # the only slot is taken
    joined = browser.post("/me/vaccination/waitlist", data={**query, "csrf_token": token})
    assert joined.status_code == 302
    with app.app_context(), tenant_scope(clinic.id):
        from plugins.features.vaccination import waitlist

        waitlist.join(
            clinic, db.session.get(Patient, (clinic.id, later.id)), full.centre_id, full.vaccine_id
        )
        db.session.commit()

    client.post(f"/api/v1/vaccination/bookings/{series}/cancel", json={"patient": str(first.id)})
    # The first in line got a message with a link; the place is held for them, not free.
    with app.app_context(), tenant_scope(clinic.id):
        offer = db.session.scalars(
            sa.select(Message).where(Message.purpose == "transactional")
        ).all()
        assert len(offer) == 1 and "10 minutes" in offer[0].content["text"]
        link = re.search(r"https?://\S+", offer[0].content["text"])[0]
    assert book(client, full, later, at(day(2), 9), at(day(30), 9)).json["error"]["code"] == "full"
    held = browser.get(link)
    assert held.status_code == 200
    second = radio_values(held.text, "second")
    assert second == [at(day(30), 9).isoformat()]
    done = browser.post(link, data={"second": second[0], "csrf_token": token})
    assert done.status_code == 302
    assert counts(app, clinic)[1:] == (2, 2)  # both places taken once, not twice


def test_an_offer_that_runs_out_goes_to_the_next_in_line(app, clinic, runner):
    from datetime import date, time

    import time_machine

    full = build(app, clinic, lines=1, days=(2, 30), opens=time(9), closes=time(9, 10))
    client = client_for(app, clinic.slug)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {full.token}"
    patients = [
        make_patient(app, clinic, phone=f"06123401{n:02d}", birth_date=date(1950, 1, 1))
        for n in range(3)
    ]
    series = book(client, full, patients[0], at(day(2), 9), at(day(30), 9)).json["series"]
    from plugins.features.vaccination import waitlist
    from plugins.features.vaccination.models import WaitlistEntry

    with app.app_context(), tenant_scope(clinic.id):
        for p in patients[1:]:
            waitlist.join(
                clinic, db.session.get(Patient, (clinic.id, p.id)), full.centre_id, full.vaccine_id
            )
        db.session.commit()
    client.post(
        f"/api/v1/vaccination/bookings/{series}/cancel", json={"patient": str(patients[0].id)}
    )
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11)):
        result = runner.invoke(args=["vaccination", "release-holds", "--tenant", "demo"])
    assert result.exit_code == 0 and "1 offers ran out" in result.output
    with app.app_context(), tenant_scope(clinic.id):
        statuses = dict(
            db.session.execute(sa.select(WaitlistEntry.patient_id, WaitlistEntry.status)).all()
        )
    assert statuses == {patients[1].id: "expired", patients[2].id: "offered"}
    assert counts(app, clinic)[1] == 1  # held for the next one: still taken once


def test_a_file_that_is_not_the_csv_expected_is_refused_by_name(app, clinic, world):
    from tests.worlds import log_in, make_staff

    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    token = csrf_token(client, "/vaccination/import")
    for data, wrong in ((b"hello\nworld", "code"), (b"\xff\xfe\x00", "file"), (b"", "file")):
        page = client.post(
            "/vaccination/import",
            data={"csrf_token": token, "file": (io.BytesIO(data), "centres.csv")},
            content_type="multipart/form-data",
        )
        assert page.status_code == 422, (data, page.status_code)
        assert f"<td>{wrong}</td>" in page.text


def test_a_slot_booked_meanwhile_is_no_longer_offered_and_cannot_be_booked_twice(app, clinic):
    """The booking page keeps the days it shows 2 seconds; a booking forgets them at once,
    and a page shown before still cannot overbook: the place is taken or refused."""
    from datetime import date, time

    full = build(app, clinic, lines=1, days=(2, 30), opens=time(9), closes=time(9, 10))
    api = client_for(app, clinic.slug)
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {full.token}"
    first = make_patient(app, clinic, phone="0612340010", birth_date=date(1950, 1, 1))
    late = make_patient(app, clinic, birth_date=date(1950, 5, 4))
    browser = logged_in_patient(app, clinic, late)
    query = {"centre": str(full.centre_id), "vaccine": str(full.vaccine_id)}
    shown = radio_values(browser.get("/me/vaccination/book", query_string=query).text, "first")
    assert shown == [at(day(2), 9).isoformat()]
    assert book(api, full, first, at(day(2), 9), at(day(30), 9)).status_code == 201
    page = browser.get("/me/vaccination/book", query_string=query)
    assert radio_values(page.text, "first") == [] and "Join the waitlist" in page.text
    # The page shown before the booking: its slot is refused, not booked twice.
    token = csrf_token(browser, "/me/vaccination")
    late_try = browser.post(
        "/me/vaccination/book",
        data={**query, "first": shown[0], "second": at(day(30), 9).isoformat()}
        | {"csrf_token": token},
    )
    assert late_try.status_code == 422 and "just been taken" in html.unescape(late_try.text)
    assert counts(app, clinic) == (2, 2, 2)
