"""The ``relais`` command line, as an operator types it.

In-process commands go through Flask's CLI runner; the worker and the demo run as real
processes, with the environment a deployment gives them.
"""

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.app import create_app
from core.auth import LoginFailed, check_password
from core.clinic import settings
from core.clinic.models import ApiKey, AuditEvent, Patient, User
from core.db import db
from core.delivery import jobs, outbox
from core.delivery.models import Message, MessageStatus
from core.delivery.sweeper import deliver_due_in_process
from core.web.cli import PathOnlyLogHandler, main
from plugins.channels.outbox.plugin import OutboxDelivery
from plugins.features.appointments import Appointment
from plugins.features.reminders.models import Reminder
from tenants.models import Operator, Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.worlds import PASSWORD, SERVER, TEST_CONFIG, client_for, csrf_token, make_patient

ROOT = Path(__file__).resolve().parents[2]
JOBS = "tests.core.jobs_for_tests"


def run_relais(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the installed ``relais`` command as a user would, bounded in time."""
    executable = shutil.which("relais", path=str(Path(sys.executable).parent))
    assert executable, "the relais command is not installed (pip install -e .)"
    return subprocess.run(
        [executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def environment(**relais: str) -> dict[str, str]:
    """This process's environment without any RELAIS_ or FLASK_ setting, plus ``relais``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "FLASK_"))}
    # The job functions the worker imports live under tests/, which is not installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update({f"RELAIS_{name}": value for name, value in relais.items()})
    return env


def deployment_environment() -> dict[str, str]:
    """What a deployment sets: the test database, Redis and keys."""
    return environment(
        DATABASE_URL=TEST_CONFIG["DATABASE_URL"],
        REDIS_URL=TEST_CONFIG["REDIS_URL"],
        SECRET_KEY=TEST_CONFIG["SECRET_KEY"],
        ENCRYPTION_KEYS=TEST_CONFIG["ENCRYPTION_KEYS"],
        SERVER_NAME=SERVER,
    )


def tenant_slugs(app) -> list[str]:
    with app.app_context(), system_scope():
        return list(db.session.scalars(sa.select(Tenant.slug).order_by(Tenant.slug)))


# --- tenants ----------------------------------------------------------------------------------


def test_tenants_create_then_list_shows_the_clinic(app, runner):
    created = runner.invoke(
        main, ["tenants", "create", "Cabinet X", "--subdomain", "x", "--country", "FR"]
    )

    assert created.exit_code == 0, created.output
    assert f"x.{SERVER}" in created.output
    listed = runner.invoke(main, ["tenants", "list"])
    assert listed.exit_code == 0
    (line,) = listed.output.splitlines()
    assert line.split()[:3] == ["x", "FR", "Europe/Paris"]
    assert line.endswith("Cabinet X")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--subdomain", "x", "--country", "ZZ"], "Unknown country"),
        (["--subdomain", "operator", "--country", "FR"], "reserved"),
        (["--subdomain", "Cabinet X!", "--country", "FR"], "lowercase letters, digits and hyphens"),
        (["--subdomain", "-x", "--country", "FR"], "lowercase letters, digits and hyphens"),
        (["--subdomain", "x", "--country", "FR", "--timezone", "Mars/Olympus"], "time zone"),
    ],
)
def test_tenants_create_refuses_bad_input_and_creates_nothing(app, runner, options, problem):
    result = runner.invoke(main, ["tenants", "create", "Cabinet X", *options])

    assert result.exit_code == 2
    assert problem.lower() in result.stderr.lower()
    assert "Traceback" not in result.output
    assert tenant_slugs(app) == []


def test_tenants_create_refuses_a_taken_subdomain(app, runner, clinic_fr):
    result = runner.invoke(
        main, ["tenants", "create", "Another", "--subdomain", clinic_fr.slug, "--country", "DE"]
    )

    assert result.exit_code == 2
    assert "This subdomain is taken." in result.stderr
    assert tenant_slugs(app) == [clinic_fr.slug]
    assert "Another" not in runner.invoke(main, ["tenants", "list"]).output


# --- plugins ----------------------------------------------------------------------------------


def plugin_states(output: str) -> dict[str, str]:
    """``plugins list --country XX`` as {plugin name: "on" | "off"}."""
    return {line.split()[1]: line.split()[0] for line in output.splitlines() if line.strip()}


def test_plugins_list_shows_every_installed_plugin(app, runner):
    result = runner.invoke(main, ["plugins", "list"])

    assert result.exit_code == 0
    installed = app.extensions["relais"].plugins.info
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert set(lines) == set(installed)
    assert {"fr", "exports"} <= set(lines)
    for name, info in installed.items():
        assert line_has(lines[name], info.kind, info.version, info.source, info.description)
    assert line_has(lines["exports"], "feature", "built-in")
    assert line_has(lines["fr"], "regulation", "built-in")


def line_has(line: str, *parts: str) -> bool:
    return all(str(part) in line for part in parts)


def test_plugins_enable_and_disable_change_what_a_country_gets(app, runner):
    assert (
        plugin_states(runner.invoke(main, ["plugins", "list", "--country", "DE"]).output)["exports"]
        == "off"
    )

    enabled = runner.invoke(main, ["plugins", "enable", "exports", "--country", "DE"])
    assert enabled.exit_code == 0, enabled.output
    assert "exports enabled for DE" in enabled.output
    states = plugin_states(runner.invoke(main, ["plugins", "list", "--country", "DE"]).output)
    assert states["exports"] == "on"
    assert states["fr"] == "off"
    # Other countries are untouched.
    assert (
        plugin_states(runner.invoke(main, ["plugins", "list", "--country", "IT"]).output)["exports"]
        == "off"
    )

    disabled = runner.invoke(main, ["plugins", "disable", "exports", "--country", "de"])
    assert disabled.exit_code == 0, disabled.output
    states = plugin_states(runner.invoke(main, ["plugins", "list", "--country", "DE"]).output)
    assert states["exports"] == "off"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["plugins", "enable", "nonesuch", "--country", "DE"], "No plugin is named nonesuch"),
        (["plugins", "disable", "nonesuch", "--country", "DE"], "No plugin is named nonesuch"),
        (["plugins", "enable", "exports", "--country", "ZZ"], "Unknown country"),
        (["plugins", "disable", "exports", "--country", "ZZ"], "Unknown country"),
        (["plugins", "list", "--country", "ZZ"], "Unknown country"),
    ],
)
def test_plugins_refuse_unknown_names(app, runner, args, problem):
    result = runner.invoke(main, args)

    assert result.exit_code == 2
    assert problem in result.stderr
    assert "Traceback" not in result.output


# --- users ------------------------------------------------------------------------------------


def printed_password(output: str) -> str:
    match = re.search(r"with password (\S+)", output)
    assert match, output
    return match.group(1)


def test_users_create_for_a_clinic_prints_a_password_that_logs_in(app, runner, clinic_fr):
    result = runner.invoke(
        main,
        ["users", "create", "Dr.Leroy@demo.example", "--name", "Dr Leroy"]
        + ["--tenant", clinic_fr.slug, "--role", "practitioner"],
    )

    assert result.exit_code == 0, result.output
    password = printed_password(result.output)
    with app.app_context(), tenant_scope(clinic_fr.id):
        user = db.session.scalar(sa.select(User).where(User.email == "dr.leroy@demo.example"))
        assert user is not None
        assert user.role == "practitioner"
        assert check_password(str(user.tenant_id), user.email, user, password) is user
        with pytest.raises(LoginFailed):
            check_password(str(user.tenant_id), user.email, user, password + "x")


def test_users_create_account_logs_in_on_the_web_as_typed(app, runner, clinic_fr):
    """Login forms lower-case the e-mail typed, so accounts must be stored that way."""
    created = runner.invoke(
        main,
        ["users", "create", "Dr.Leroy@Demo.example", "--name", "Dr Leroy"]
        + ["--tenant", clinic_fr.slug, "--password", PASSWORD],
    )
    assert created.exit_code == 0, created.output
    client = client_for(app, clinic_fr.slug)

    page = client.post(
        "/login",
        data={
            "email": "Dr.Leroy@Demo.example",
            "password": PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
    )

    assert page.status_code == 302, page.text
    assert page.headers["Location"].endswith("/login/enrol")


def test_users_create_for_the_operator_console(app, runner):
    result = runner.invoke(
        main,
        ["users", "create", "ops@relais.example", "--name", "Ops", "--operator"]
        + ["--password", "a long operator password"],
    )

    assert result.exit_code == 0, result.output
    assert "a long operator password" not in result.output  # given, so not echoed back
    with app.app_context(), system_scope():
        operator = db.session.scalar(
            sa.select(Operator).where(Operator.email == "ops@relais.example")
        )
        assert (
            check_password("operator", operator.email, operator, "a long operator password")
            is operator
        )
        # An operator is not a staff member of any clinic.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_users_create_generates_an_operator_password_when_omitted(app, runner):
    result = runner.invoke(
        main, ["users", "create", "ops@relais.example", "--name", "O", "--operator"]
    )

    assert result.exit_code == 0, result.output
    password = printed_password(result.output)
    with app.app_context(), system_scope():
        operator = db.session.scalar(sa.select(Operator))
        assert check_password("operator", operator.email, operator, password) is operator


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ([], "Give either --tenant SLUG or --operator."),
        (["--tenant", "demo", "--operator"], "Give either --tenant SLUG or --operator."),
        (["--tenant", "nowhere"], "No clinic has the subdomain nowhere"),
        (["--tenant", "demo", "--password", "short"], "at least 12 characters"),
        (["--tenant", "demo", "--password", "x" * 129], "at most 128 characters"),
        (["--tenant", "demo", "--password", "password1234"], "too common"),
        (["--operator", "--password", "azertyuiop123"], "too common"),
        (["--tenant", "demo", "--role", "janitor"], "janitor"),
    ],
)
def test_users_create_refuses_bad_input_and_creates_nothing(app, runner, clinic_fr, where, problem):
    result = runner.invoke(main, ["users", "create", "a@demo.example", "--name", "A", *where])

    assert result.exit_code == 2
    assert problem in result.stderr
    with app.app_context(), system_scope():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Operator)) == 0


# --- plugins configure ------------------------------------------------------------------------

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f00dbabe" * 4


def twilio_settings(app, country: str = "FR") -> dict:
    """What the sms_twilio plugin has stored for a country (secrets decrypted)."""
    with app.app_context(), system_scope():
        return settings.stored(country, "sms_twilio")


def configure(runner, *args: str, stdin: str | None = None):
    return runner.invoke(
        main, ["plugins", "configure", "sms_twilio", "--country", "FR", *args], input=stdin
    )


def test_plugins_configure_sets_a_countrys_settings_with_secrets_from_stdin(app, runner):
    result = configure(
        runner,
        f"account_sid={ACCOUNT_SID}",
        "sender=+33 6 12 34 56 78",
        "auth_token",
        stdin=f"{AUTH_TOKEN}\n",
    )

    assert result.exit_code == 0, result.output
    assert "sms_twilio saved for FR: account_sid, sender, auth_token (secret)" in result.output
    assert AUTH_TOKEN not in result.output + result.stderr
    stored = twilio_settings(app)
    # Parsed as the console parses them: the sender in E.164.
    assert stored["account_sid"] == ACCOUNT_SID and stored["sender"] == "+33612345678"
    assert stored["auth_token"] == AUTH_TOKEN
    assert twilio_settings(app, "DE") == {}


def test_plugins_configure_keeps_what_it_is_not_given(app, runner):
    configure(
        runner, f"account_sid={ACCOUNT_SID}", "sender=RELAIS", "auth_token", stdin=f"{AUTH_TOKEN}\n"
    )

    changed = configure(runner, "sender=CLINIC")
    assert changed.exit_code == 0, changed.output
    stored = twilio_settings(app)
    assert (stored["account_sid"], stored["auth_token"], stored["sender"]) == (
        ACCOUNT_SID,
        AUTH_TOKEN,
        "CLINIC",
    )

    emptied = configure(runner, "sender=")
    assert emptied.exit_code == 0, emptied.output
    assert "sender" not in twilio_settings(app)


@pytest.mark.parametrize(
    ("args", "stdin", "problem"),
    [
        ([f"auth_token={AUTH_TOKEN}"], None, "auth_token is a secret"),
        (["sender=not a sender!"], None, "(sender)"),
        (["auth_token"], "not-a-token\n", "(auth_token)"),
        (["auth_token"], "", "No value for the secret auth_token"),
        (["colour=blue"], None, "no setting 'colour'"),
        (["sender"], None, "Give sender a value"),
    ],
)
def test_plugins_configure_refuses_bad_input_and_changes_nothing(app, runner, args, stdin, problem):
    configure(runner, "sender=RELAIS")

    result = configure(runner, f"account_sid={ACCOUNT_SID}", *args, stdin=stdin)

    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    assert "Traceback" not in result.output
    assert AUTH_TOKEN not in result.output + result.stderr
    assert twilio_settings(app) == {"sender": "RELAIS"}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["nonesuch", "--country", "FR", "a=b"], "No plugin is named nonesuch"),
        (["sms_twilio", "--country", "ZZ", "sender=RELAIS"], "Unknown country"),
        (["outbox", "--country", "FR", "a=b"], "The outbox plugin has no setting 'a'"),
    ],
)
def test_plugins_configure_refuses_unknown_names(app, runner, args, problem):
    result = runner.invoke(main, ["plugins", "configure", *args])

    assert result.exit_code == 2, result.output
    assert problem in result.stderr


# --- API keys ---------------------------------------------------------------------------------


def test_apikeys_create_prints_a_key_once_that_opens_the_api(app, runner, clinic_fr):
    result = runner.invoke(main, ["apikeys", "create", "--tenant", clinic_fr.slug, "Agenda"])

    assert result.exit_code == 0, result.output
    token = result.output.splitlines()[-1]
    assert token.startswith("rl_")
    api = client_for(app, clinic_fr.slug)
    assert (
        api.get("/api/v1/patients", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    with app.app_context(), tenant_scope(clinic_fr.id):
        key = db.session.scalars(sa.select(ApiKey)).one()
        assert key.name == "Agenda" and token not in key.digest
        events = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert events.count("api_key.create") == 1


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--tenant", "nonesuch", "Agenda"], "No clinic has the subdomain nonesuch"),
        (["--tenant", "demo", "  "], "(name)"),
    ],
)
def test_apikeys_create_refuses_bad_input_and_creates_nothing(
    app, runner, clinic_fr, args, problem
):
    result = runner.invoke(main, ["apikeys", "create", *args])

    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    with app.app_context(), tenant_scope(clinic_fr.id):
        assert db.session.scalars(sa.select(ApiKey)).all() == []


# --- a plugin's command: exports --------------------------------------------------------------


def test_exports_patients_writes_the_clinics_patients_as_csv(app, runner, clinic_fr, other_clinic):
    make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand", email="j@example.org")
    make_patient(app, clinic_fr, first_name="Lucas", last_name="Bernard", phone="0798765432")
    make_patient(app, other_clinic, first_name="Autre", last_name="Ailleurs")

    result = runner.invoke(main, ["exports", "patients", "--tenant", clinic_fr.slug])

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["last_name"], r["first_name"]) for r in rows] == [
        ("Bernard", "Lucas"),
        ("Durand", "Jeanne"),
    ]
    assert rows[0]["phone"] == "+33798765432"
    assert rows[1]["email"] == "j@example.org"
    assert "2 patients exported." in result.stderr
    with app.app_context(), tenant_scope(clinic_fr.id):
        actions = db.session.scalars(sa.select(AuditEvent.action))
        assert "patient.export" in set(actions)


def test_exports_patients_refuses_when_the_plugin_is_off_in_the_country(app, runner, clinic_fr):
    make_patient(app, clinic_fr)
    assert runner.invoke(main, ["plugins", "disable", "exports", "--country", "FR"]).exit_code == 0

    result = runner.invoke(main, ["exports", "patients", "--tenant", clinic_fr.slug])

    assert result.exit_code == 2
    assert "The exports plugin is not enabled for the clinic demo." in result.stderr
    assert "Jeanne" not in result.stdout


def test_exports_patients_of_an_unknown_clinic(app, runner):
    result = runner.invoke(main, ["exports", "patients", "--tenant", "nowhere"])

    assert result.exit_code == 2
    assert "No clinic has the subdomain nowhere" in result.stderr


# --- worker (a real process on the test database and Redis) ----------------------------------


def run_worker() -> subprocess.CompletedProcess:
    done = run_relais("worker", "--burst", env=deployment_environment())
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_worker_runs_each_job_in_its_clinic(app, clinic_fr, other_clinic):
    mine = make_patient(app, clinic_fr, last_name="Durand")
    theirs = make_patient(app, other_clinic, last_name="Martin")
    with app.app_context():
        jobs.enqueue(clinic_fr, f"{JOBS}:rename_patient", str(mine.id), "Dupont")
        # A job of clinic A given clinic B's id does not find it.
        jobs.enqueue(clinic_fr, f"{JOBS}:rename_patient", str(theirs.id), "Dupont")

    run_worker()

    with app.app_context(), system_scope():
        names = dict(db.session.execute(sa.select(Patient.id, Patient.last_name)).all())
    assert names == {mine.id: "Dupont", theirs.id: "Martin"}
    with app.app_context():
        assert all(jobs.queue(name).count == 0 for name in jobs.QUEUES)


def test_worker_takes_queues_in_strict_priority(app, clinic_fr):
    with app.app_context():
        # Enqueued lowest priority first: the worker still runs the OTP first.
        jobs.enqueue(clinic_fr, f"{JOBS}:record", "ran.bulk", queue_name="bulk")
        jobs.enqueue(clinic_fr, f"{JOBS}:record", "ran.reminders", queue_name="reminders")
        jobs.enqueue(clinic_fr, f"{JOBS}:record", "ran.transactional")
        jobs.enqueue(clinic_fr, f"{JOBS}:record", "ran.otp", queue_name="otp")

    run_worker()

    with app.app_context(), tenant_scope(clinic_fr.id):
        events = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.at)).all()
    assert [e.action for e in events] == [
        "ran.otp",
        "ran.transactional",
        "ran.reminders",
        "ran.bulk",
    ]
    assert {e.tenant_id for e in events} == {clinic_fr.id}


def test_a_worker_kept_for_codes_takes_only_the_otp_queue(app, clinic_fr):
    with app.app_context():
        jobs.enqueue(clinic_fr, f"{JOBS}:record", "ran.bulk", queue_name="bulk")
        jobs.enqueue(clinic_fr, f"{JOBS}:record", "ran.otp", queue_name="otp")

    done = run_relais("worker", "--burst", "--queue", "otp", env=deployment_environment())
    assert done.returncode == 0, done.stdout + done.stderr

    with app.app_context(), tenant_scope(clinic_fr.id):
        assert db.session.scalars(sa.select(AuditEvent.action)).all() == ["ran.otp"]
    with app.app_context():
        assert jobs.queue("bulk").count == 1  # left for the other workers


def test_worker_without_redis_says_what_to_set(tmp_path):
    env = deployment_environment()
    del env["RELAIS_REDIS_URL"]

    done = run_relais("worker", "--burst", env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert "Set RELAIS_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr


# --- demo (a real process on SQLite, no keys given) -------------------------------------------

ACCOUNT = re.compile(r"^\s+(\w+)\s+(\S+@\S+)\s+password: (\S+)$", re.MULTILINE)


def test_demo_links_name_the_port_it_serves(tmp_path):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    run = run_relais("demo", "--no-serve", "--port", "5123", env=environment(DATABASE_URL=url))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "http://demo.localhost:5123/" in run.stdout

    demo_app = create_app({"DATABASE_URL": url, "TESTING": True})
    try:
        with demo_app.app_context():
            assert deliver_due_in_process() > 0  # the calendar invitations of the seed
            with system_scope():
                texts = db.session.scalars(sa.select(OutboxDelivery.text)).all()
        links = [link for text in texts for link in re.findall(r"https?://[^\s\"<>]+", text)]
        assert links, texts
        assert all("localhost:5123/" in link for link in links), links
    finally:
        with demo_app.app_context():
            db.engine.dispose()


def test_demo_sets_up_a_clinic_on_sqlite_and_renews_passwords(tmp_path):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    env = environment(DATABASE_URL=url)

    first = run_relais("demo", "--no-serve", env=env, cwd=tmp_path)
    second = run_relais("demo", "--no-serve", env=env, cwd=tmp_path)

    for run in (first, second):
        assert run.returncode == 0, run.stdout + run.stderr
        assert "http://demo.localhost:5000" in run.stdout
        assert "http://operator.localhost:5000" in run.stdout
    before = {role: (email, pw) for role, email, pw in ACCOUNT.findall(first.stdout)}
    after = {role: (email, pw) for role, email, pw in ACCOUNT.findall(second.stdout)}
    assert set(before) == {"operator", "admin", "practitioner", "secretary"}
    assert set(after) == set(before)
    for role in before:
        assert after[role][0] == before[role][0]
        assert after[role][1] != before[role][1]

    # The printed accounts are real: the new passwords log in, the old ones no longer do.
    demo_app = create_app({"DATABASE_URL": url, "TESTING": True})
    try:
        with demo_app.app_context(), system_scope():
            (tenant,) = db.session.scalars(sa.select(Tenant)).all()
            assert tenant.slug == "demo"
            tenant_id = tenant.id
            assert tenant.country_code == "FR"
            operator = db.session.scalar(sa.select(Operator))
            assert operator.email == after["operator"][0]
            assert (
                check_password("operator", operator.email, operator, after["operator"][1])
                is operator
            )
            with tenant_scope(tenant.id):
                assert len(db.session.scalars(sa.select(Patient)).all()) >= 3
                # This week's agenda (relais_seed_demo), the same after the second run.
                agenda = db.session.scalars(sa.select(Appointment.external_id)).all()
                assert sorted(agenda) == ["demo-1", "demo-2", "demo-3", "demo-4"]
                # Their reminders wait in the outbox (at least the one 2 hours before each).
                reminders = db.session.scalars(
                    sa.select(Message.status).join(Reminder, Reminder.message_id == Message.id)
                ).all()
                assert len(reminders) >= 4 and set(reminders) == {MessageStatus.SCHEDULED}
                admin = db.session.scalar(sa.select(User).where(User.email == after["admin"][0]))
                assert (
                    check_password(str(admin.tenant_id), admin.email, admin, after["admin"][1])
                    is admin
                )
                with pytest.raises(LoginFailed):
                    check_password(str(admin.tenant_id), admin.email, admin, before["admin"][1])
                db.session.rollback()
                # Twilio, Infobip and SMTP are enabled without accounts: SMS go to the outbox.
                patient = db.session.scalars(sa.select(Patient).order_by(Patient.id)).first()
                message = outbox.send(tenant, patient, "transactional", "Votre ordonnance")
                db.session.commit()
                message_id = message.id
        with demo_app.app_context():
            # The message, and the calendar invitations of the two patients with an e-mail.
            assert deliver_due_in_process() == 3
        with demo_app.app_context(), tenant_scope(tenant_id):
            message = db.session.get(Message, (tenant_id, message_id))
            # The outbox is the patient's inbox: what it takes is delivered.
            assert (message.status, message.provider) == (MessageStatus.DELIVERED, "outbox_sms")
            sms = db.session.scalars(
                sa.select(OutboxDelivery.text).where(OutboxDelivery.channel == "sms")
            ).all()
            assert sms == ["Votre ordonnance"]
    finally:
        with demo_app.app_context():
            db.engine.dispose()


def test_the_demo_server_logs_paths_without_queries_nor_link_tokens():
    """Its request log shows where people went, never what opens an account or a record."""
    logged = []
    handler = PathOnlyLogHandler.__new__(PathOnlyLogHandler)  # no socket: only its log line
    handler.log = lambda level, fmt, *args: logged.append(fmt % args)
    for path in (
        "/invitation/eyJuIjoiTEZHRFdEOXB3NVlsVVdLU1RmMUkwdyJ9.aw_-jw.BX-2bPK5V-t3gJdaNRm3kd33ck4",
        "/consent/eyJwIjoiMDE5In0.Lx3Bq0nJ0yPpXGJY8Vd2QmZl7kE",
        "/patients?q=Durand",
        "/static/relais.css",
    ):
        handler.command, handler.path = "GET", path
        handler.log_request(200)
    assert logged == [
        '"GET /invitation/[token]" 200',
        '"GET /consent/[token]" 200',
        '"GET /patients" 200',
        '"GET /static/relais.css" 200',
    ]


def test_users_invite_refuses_a_bad_address_and_sends_nothing(app, runner, clinic_fr):
    result = runner.invoke(
        main, ["users", "invite", "not-an-address", "--name", "Claire", "--tenant", "demo"]
    )
    assert result.exit_code == 2
    assert "This is not a valid e-mail address. (email)" in result.output
    with app.app_context(), system_scope():
        assert db.session.scalar(sa.select(sa.func.count(Message.id))) == 0
