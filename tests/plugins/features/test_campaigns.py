"""Campaigns through their pages and jobs: segments counted with consents and opt-outs (and
encrypted attributes, through their keyed index), bad input refused with nothing changed,
quiet hours in France, the progress figures, pause and cancel between chunks, the CSV."""

import csv
import io
import uuid

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import consent, settings
from core.clinic.models import ConsentAction, ConsentMethod, Patient
from core.db import db
from core.delivery.models import Message, MessageStatus
from plugins.features.campaigns import service
from plugins.features.campaigns.models import Campaign, CampaignRecipient
from tenants.scoping import system_scope, tenant_scope
from tests.tenants.test_console import make_operator
from tests.worlds import (
    OPEN_HOURS,
    SERVER,
    client_for,
    consent_to_campaigns,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

PREGNANCY = "pregnancy_follow_up"


@pytest.fixture
def clock():
    """A Wednesday morning in Paris, time standing still (campaigns may leave)."""
    with time_machine.travel(OPEN_HOURS, tick=False) as traveller:
        yield traveller


@pytest.fixture
def clinic(app, clock):
    return make_clinic(app, "demo", plugins=("fr", "outbox", "campaigns"))


@pytest.fixture
def staff(app, clinic):
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    return client


def opt_out(app, clinic, patient, channel="sms"):
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        consent.record(who, channel, ConsentAction.WITHDRAWN, ConsentMethod.SMS_REPLY, "patient")
        db.session.commit()


@pytest.fixture
def world(app, clinic):
    """Four patients in pregnancy follow-up (one reachable by SMS, one opted out, one without
    consent, one without a phone) and one reachable patient without the attribute."""
    reachable = make_patient(app, clinic, first_name="Alice", attributes=[PREGNANCY])
    consent_to_campaigns(app, clinic, reachable)
    out = make_patient(app, clinic, first_name="Berthe", phone="0612345679", attributes=[PREGNANCY])
    consent_to_campaigns(app, clinic, out)
    opt_out(app, clinic, out)
    make_patient(app, clinic, first_name="Chloé", phone="0612345670", attributes=[PREGNANCY])
    no_phone = make_patient(
        app, clinic, first_name="Denise", phone="", email="d@example.org", attributes=[PREGNANCY]
    )
    consent_to_campaigns(app, clinic, no_phone)
    other = make_patient(app, clinic, first_name="Emma", phone="0612345671")
    consent_to_campaigns(app, clinic, other)
    return {"reachable": reachable, "out": out, "other": other}


def draft_form(client, **fields):
    data = {
        "csrf_token": csrf_token(client, "/campaigns/new"),
        "name": "Grippe 2026",
        "channels": "sms",
        "default_language": "fr",
        "template_fr": "Bonjour {{ patient }}, la vaccination contre la grippe commence.",
        "attributes": PREGNANCY,
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def new_draft(client, **fields) -> str:
    page = client.post("/campaigns/new", data=draft_form(client, **fields))
    assert page.status_code == 303, page.text
    return page.headers["Location"].rsplit("/", 1)[-1]


def campaigns_in(app, clinic) -> list[Campaign]:
    with app.app_context(), tenant_scope(clinic.id):
        return list(db.session.scalars(sa.select(Campaign)))


def messages_of(app, clinic) -> list[Message]:
    with app.app_context(), tenant_scope(clinic.id):
        return list(db.session.scalars(sa.select(Message).where(Message.purpose == "campaign")))


def run_jobs(app, clinic, campaign_id):
    """What the worker does for a started campaign: the plan, then every chunk."""
    from core.delivery import jobs

    with app.app_context():
        jobs.run(str(clinic.id), service.JOB + "plan", campaign_id)
        with tenant_scope(clinic.id):
            numbers = db.session.scalars(
                sa.text("SELECT number FROM campaign_chunks ORDER BY number")
            ).all()
        for number in numbers:
            jobs.run(str(clinic.id), service.JOB + "run_chunk", campaign_id, number)


def test_the_live_count_splits_the_segment_by_consent_opt_out_and_address(app, world, staff):
    answer = staff.get(f"/campaigns/count?attributes={PREGNANCY}&channels=sms&channels=email")
    assert answer.status_code == 200
    body = answer.json
    assert body["total"] == 4
    assert body["channels"]["sms"] == {
        "reachable": 1,
        "no_address": 1,
        "opted_out": 1,
        "no_consent": 1,
    }
    assert body["channels"]["email"]["reachable"] == 0  # consents were given for SMS only
    assert body["recipients"] == 1
    everyone = staff.get("/campaigns/count?channels=sms").json
    assert everyone["total"] == 5 and everyone["recipients"] == 2


def test_the_segment_filters_on_the_patients_recorded_sex(app, clinic, world, staff):
    for first_name, sex in (("Fanny", "female"), ("Gaston", "male"), ("Hugo", "male")):
        patient = make_patient(app, clinic, first_name=first_name, phone=None, sex=sex)
        consent_to_campaigns(app, clinic, patient)
    men = staff.get("/campaigns/count?sexes=male&channels=sms").json
    assert men["total"] == 2  # the five without a recorded sex are left out
    assert staff.get("/campaigns/count?sexes=male&sexes=female").json["total"] == 3
    bad = staff.get("/campaigns/count?sexes=man")
    assert bad.status_code == 422 and bad.json["error"]["field"] == "sexes"
    campaign_id = new_draft(staff, attributes=None, sexes="female")
    assert campaigns_in(app, clinic)[0].segment["sexes"] == ["female"]
    assert 'value="female" checked' in staff.get(f"/campaigns/{campaign_id}/edit").text


def test_attributes_are_matched_through_their_keyed_index(app, clinic, world):
    with app.app_context(), tenant_scope(clinic.id):
        row = db.session.execute(
            sa.text("SELECT attributes, attribute_tokens FROM patients WHERE first_name = 'Alice'")
        ).one()
    assert PREGNANCY not in row.attributes  # encrypted
    assert len(row.attribute_tokens) == 1 and PREGNANCY not in row.attribute_tokens[0]
    other = make_clinic(app, "other", plugins=("fr", "campaigns"))
    twin = make_patient(app, other, first_name="Alice", attributes=[PREGNANCY])
    with app.app_context(), tenant_scope(other.id):
        tokens = db.session.scalar(
            sa.text("SELECT attribute_tokens FROM patients WHERE id = :i"), {"i": twin.id}
        )
    assert tokens != row.attribute_tokens  # another clinic, another token


def test_a_started_campaign_writes_each_reachable_patient_once(app, clinic, world, staff):
    campaign_id = new_draft(staff)
    page = staff.get(f"/campaigns/{campaign_id}")
    assert "STOP au 36180" in page.text  # the preview shows the country's STOP mention
    assert "1 SMS" in page.text
    started = staff.post(
        f"/campaigns/{campaign_id}/start",
        data={"csrf_token": csrf_token(staff, f"/campaigns/{campaign_id}")},
    )
    assert started.status_code == 303
    run_jobs(app, clinic, campaign_id)
    run_jobs(app, clinic, campaign_id)  # a job run twice sends nobody twice
    sent = messages_of(app, clinic)
    assert [m.patient_id for m in sent] == [world["reachable"].id]
    assert sent[0].content["text"].endswith("STOP au 36180")
    progress = staff.get(f"/campaigns/{campaign_id}/progress").json
    assert progress["state"] == "done"
    assert progress["total"] == 1 and progress["written"] == 1
    assert progress["figures"]["queued"] == 1
    export = staff.get(f"/campaigns/{campaign_id}/outcomes.csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["patient_id"], r["outcome"]) for r in rows] == [
        (str(world["reachable"].id), "queued")
    ]
    with app.app_context(), tenant_scope(clinic.id):
        actions = db.session.scalars(sa.text("SELECT action FROM audit_events")).all()
    assert "campaign.outcomes.read" in actions


def test_campaign_sms_in_france_after_20h_wait_for_the_morning(app, clock, clinic, world):
    clock.move_to(OPEN_HOURS.replace(hour=20, minute=30))  # 21:30 in Paris
    staff = client_for(app, clinic.slug)
    log_in(staff, make_staff(app, clinic, "admin"))
    campaign_id = new_draft(staff)
    staff.post(
        f"/campaigns/{campaign_id}/start",
        data={"csrf_token": csrf_token(staff, f"/campaigns/{campaign_id}")},
    )
    run_jobs(app, clinic, campaign_id)
    (message,) = messages_of(app, clinic)
    assert message.status == MessageStatus.SCHEDULED
    assert message.verdict_until.isoformat() == "2026-11-19T07:00:00+00:00"  # 08:00 Paris
    progress = staff.get(f"/campaigns/{campaign_id}/progress").json
    assert progress["figures"]["deferred"] == 1 and progress["figures"]["queued"] == 0
    # Cancelled before the morning: the message waiting for it is cancelled too.
    token = csrf_token(staff, f"/campaigns/{campaign_id}")
    staff.post(f"/campaigns/{campaign_id}/cancel", data={"csrf_token": token})
    (message,) = messages_of(app, clinic)
    assert message.status == MessageStatus.CANCELLED
    progress = staff.get(f"/campaigns/{campaign_id}/progress").json
    assert progress["state"] == "cancelled" and progress["figures"]["cancelled"] == 1


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"template_fr": "Bonjour {{ prenom }}"}, "template_fr"),
        ({"attributes": "needs_support"}, "segment"),
        ({"start_at": "2026-11-17T10:00"}, "start_at"),
        ({"name": ""}, "name"),
        ({"channels": "fax"}, "channels"),
        ({"age_min": "70", "age_max": "60"}, "age_max"),
        ({"practitioner_id": "nobody"}, "practitioner_id"),
        ({"rate": "0"}, "rate"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_sent(app, clinic, world, staff, fields, field):
    page = staff.post("/campaigns/new", data=draft_form(staff, **fields))
    if page.status_code == 303:  # a draft may be saved; starting it is what must refuse
        campaign_id = page.headers["Location"].rsplit("/", 1)[-1]
        page = staff.post(
            f"/campaigns/{campaign_id}/start",
            data={"csrf_token": csrf_token(staff, f"/campaigns/{campaign_id}")},
        )
        assert all(c.state == "draft" for c in campaigns_in(app, clinic))
    else:
        assert campaigns_in(app, clinic) == []
    assert page.status_code == 422
    # the field named: by the form's field, or by the campaign page's message
    assert f'id="e-{field}"' in page.text or f'data-field="{field}"' in page.text
    assert messages_of(app, clinic) == []


def test_france_refuses_a_campaign_sms_without_its_stop_mention(app, clinic, world, staff):
    with app.app_context(), system_scope():
        settings.save("FR", "fr", {"stop_mention": ""})
        db.session.commit()
    campaign_id = new_draft(staff)
    page = staff.post(
        f"/campaigns/{campaign_id}/start",
        data={"csrf_token": csrf_token(staff, f"/campaigns/{campaign_id}")},
    )
    assert page.status_code == 422
    assert 'data-field="channels"' in page.text
    assert "renseignez d&#39;abord la mention STOP pour France" in page.text
    assert [c.state for c in campaigns_in(app, clinic)] == ["draft"]
    assert messages_of(app, clinic) == []


def test_pause_stops_between_chunks_and_resume_goes_on(app, clinic, staff):
    with app.app_context(), system_scope():
        settings.save("FR", "campaigns", {"chunk": "2"})
        db.session.commit()
    for n in range(5):
        patient = make_patient(app, clinic, first_name=f"P{n}", phone=f"061234560{n}")
        consent_to_campaigns(app, clinic, patient)
    campaign_id = new_draft(staff, attributes=None)
    token = csrf_token(staff, f"/campaigns/{campaign_id}")
    staff.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": token})
    from core.delivery import jobs

    with app.app_context():
        jobs.run(str(clinic.id), service.JOB + "plan", campaign_id)
        jobs.run(str(clinic.id), service.JOB + "run_chunk", campaign_id, 0)
    assert (
        staff.post(f"/campaigns/{campaign_id}/pause", data={"csrf_token": token}).status_code == 303
    )
    run_jobs(app, clinic, campaign_id)  # the jobs queued meanwhile find it paused
    assert len(messages_of(app, clinic)) == 2
    assert staff.get(f"/campaigns/{campaign_id}/progress").json["state"] == "paused"
    staff.post(f"/campaigns/{campaign_id}/resume", data={"csrf_token": token})
    run_jobs(app, clinic, campaign_id)
    sent = messages_of(app, clinic)
    assert len(sent) == 5 and len({m.patient_id for m in sent}) == 5
    assert staff.get(f"/campaigns/{campaign_id}/progress").json["state"] == "done"
    with app.app_context(), tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CampaignRecipient)) == 5


def test_the_cli_lists_and_shows_a_campaign(app, clinic, world, staff, runner):
    campaign_id = new_draft(staff)
    result = runner.invoke(args=["campaigns", "start", campaign_id, "--tenant", "demo"])
    assert result.exit_code == 0, result.output
    run_jobs(app, clinic, campaign_id)
    listed = runner.invoke(args=["campaigns", "list", "--tenant", "demo"])
    assert "done" in listed.output and "Grippe 2026" in listed.output
    status = runner.invoke(args=["campaigns", "status", campaign_id, "--tenant", "demo", "--watch"])
    assert "queued: 1" in status.output
    again = runner.invoke(args=["campaigns", "start", campaign_id, "--tenant", "demo"])
    assert again.exit_code == 2 and "already been started" in again.output


def test_an_operator_runs_one_campaign_across_the_clinics_of_a_country(app, clinic, runner):
    other = make_clinic(app, "other", plugins=("fr", "outbox", "campaigns"))
    make_clinic(app, "berlin", country="DE", plugins=("de", "campaigns"))
    for tenant, count in ((clinic, 2), (other, 1)):
        for n in range(count):
            patient = make_patient(app, tenant, first_name=f"P{n}", phone=f"06123450{n:02d}")
            consent_to_campaigns(app, tenant, patient)
    empty = make_clinic(app, "empty", plugins=("fr", "campaigns"))
    started = runner.invoke(
        args=[
            "campaigns",
            "country-start",
            "--country",
            "FR",
            "--name",
            "Octobre rose",
            "--default-language",
            "fr",
            "--text",
            "fr=Bonjour {{ patient }}, dépistage.",
        ]
    )
    assert started.exit_code == 0, started.output
    lines = started.output.splitlines()
    run = lines[0].split()[1]
    outcome = dict(line.split(None, 1) for line in lines[1:])
    assert outcome["demo"] == outcome["other"] == "started"
    assert outcome["empty"] != "started" and "berlin" not in outcome
    for tenant in (clinic, other):
        with app.app_context(), tenant_scope(tenant.id):
            campaign_id = str(db.session.scalar(sa.select(Campaign.id)))
        run_jobs(app, tenant, campaign_id)
    status = runner.invoke(args=["campaigns", "country-status", run])
    assert status.exit_code == 0, status.output
    rows = {line.split()[0]: line.split() for line in status.output.splitlines()[1:]}
    assert rows["demo"][1:3] == ["done", "2"] and rows["other"][1:3] == ["done", "1"]
    assert set(rows) == {"demo", "other", "empty"}  # the empty clinic's draft is kept
    assert empty.slug == "empty"
    bad = runner.invoke(args=["campaigns", "country-status", "nonsense"])
    assert bad.exit_code == 2


def country_form(console, **fields) -> dict:
    data = {
        "csrf_token": csrf_token(console, "/campaigns"),
        "country": "FR",
        "name": "Octobre rose",
        "channels": "sms",
        "default_language": "fr",
        "template_fr": "Bonjour {{ patient }}, octobre est le mois du dépistage.",
        "sexes": "female",
        "age_min": "50",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def test_an_operator_starts_a_country_campaign_in_the_console_and_follows_each_clinic(
    app, clinic, runner
):
    other = make_clinic(app, "other", plugins=("fr", "outbox", "campaigns"))
    for tenant, count in ((clinic, 3), (other, 1)):
        for n in range(count):
            patient = make_patient(
                app, tenant, first_name=f"P{n}", phone=f"06123450{n:02d}", sex="female",
                birth_date="1960-05-01",
            )  # fmt: skip
            consent_to_campaigns(app, tenant, patient)
    young = make_patient(app, clinic, phone="0612345699", sex="female", birth_date="2000-01-01")
    consent_to_campaigns(app, clinic, young)  # under 50: not in the segment
    console = client_for(app, "operator")
    log_in(console, make_operator(app))
    page = console.get("/campaigns")
    assert page.status_code == 200 and 'href="/campaigns" aria-current="page"' in page.text
    bad = console.post("/campaigns", data=country_form(console, template_fr="Hi {{ prenom }}"))
    assert bad.status_code == 422 and 'id="e-template_fr"' in bad.text
    nowhere = console.post("/campaigns", data=country_form(console, country="DE"))
    assert nowhere.status_code == 422 and 'id="e-country"' in nowhere.text
    assert campaigns_in(app, clinic) == campaigns_in(app, other) == []  # nothing created
    forged = console.post("/campaigns", data={**country_form(console), "csrf_token": "x"})
    assert forged.status_code == 400 and campaigns_in(app, clinic) == []

    started = console.post("/campaigns", data=country_form(console))
    assert started.status_code == 303
    run_path = started.headers["Location"]
    for tenant in (clinic, other):
        [campaign] = campaigns_in(app, tenant)
        assert campaign.state == "running" and campaign.segment["sexes"] == ["female"]
        run_jobs(app, tenant, str(campaign.id))
    run_page = console.get(run_path)
    assert run_page.status_code == 200
    assert 'id="clinic-demo"' in run_page.text and 'id="clinic-other"' in run_page.text
    assert '<progress data-figure="bar" max="3" value="3"' in run_page.text
    figures = console.get(run_path + "/progress").json
    assert (figures["demo"]["written"], figures["other"]["written"]) == (3, 1)
    assert figures["demo"]["state"] == "done" and figures["demo"]["clinic"] == "Clinic demo"
    assert "Octobre rose" in console.get("/campaigns").text  # listed among the latest
    assert console.get("/campaigns/runs/nonsense").status_code == 404
    assert console.get(f"/campaigns/runs/{uuid.uuid4()}/progress").status_code == 404
    # The same run, seen from the command line.
    assert (
        "done"
        in runner.invoke(args=["campaigns", "country-status", run_path.split("/")[-1]]).output
    )


def test_clinic_staff_cannot_reach_the_console_s_campaigns(app, clinic, staff):
    assert staff.get("/campaigns", base_url=f"https://operator.{SERVER}").status_code == 302
    outsider = client_for(app, "operator")
    assert outsider.get("/campaigns").status_code == 302  # to the operators' login


def test_a_campaign_set_for_later_waits_for_its_time_even_after_pause_and_resume(
    app, clock, clinic, world, staff
):
    campaign_id = new_draft(staff, start_at="2026-11-19T09:00")  # tomorrow, Paris time
    token = csrf_token(staff, f"/campaigns/{campaign_id}")
    staff.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": token})
    assert staff.get(f"/campaigns/{campaign_id}/progress").json["state"] == "scheduled"
    staff.post(f"/campaigns/{campaign_id}/pause", data={"csrf_token": token})
    staff.post(f"/campaigns/{campaign_id}/resume", data={"csrf_token": token})
    assert staff.get(f"/campaigns/{campaign_id}/progress").json["state"] == "scheduled"
    assert messages_of(app, clinic) == []
    clock.move_to("2026-11-19T08:00:00+00:00")  # its time: the worker's scheduler runs the plan
    run_jobs(app, clinic, campaign_id)
    assert [m.patient_id for m in messages_of(app, clinic)] == [world["reachable"].id]
