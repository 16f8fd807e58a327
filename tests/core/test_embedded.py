"""The embedded first run (README's first command): SQLite, the demo's clinic, no Redis.

Every page a staff member, an admin and the operator can reach answers, none with a 5xx:
the demo is walked page by page on SQLite, as a new clinic would click through it.
"""

import re

import pytest

from core import schema
from core.app import create_app
from core.db import db
from core.web.demo import seed as seed_demo
from tenants.models import Tenant
from tenants.scoping import system_scope
from tests.tenants.test_console import make_operator
from tests.worlds import TEST_CONFIG, HostClient, client_for, log_in, make_staff

LINK = re.compile(r'href="(/[^"#?]*)"')
SKIP = ("/logout", "/static/", "/login")  # leaving, files, and the way in


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'relais.db'}"
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url, "REDIS_URL": None})
    app.test_client_class = HostClient
    with app.app_context():
        schema.upgrade()
        with system_scope():
            seed_demo()
            db.session.commit()
            clinic = db.session.query(Tenant).filter_by(slug="demo").one()
            db.session.expunge(clinic)
    yield app, clinic
    with app.app_context():
        db.engine.dispose()


def walk(client, start: str = "/") -> dict[str, int]:
    """Follow every link of the pages reached from ``start`` on the same host: their
    statuses by path."""
    seen, todo = {}, [start]
    while todo:
        path = todo.pop()
        if path in seen or path.startswith(SKIP):
            continue
        page = client.get(path)
        seen[path] = page.status_code
        if page.mimetype == "text/html":
            todo.extend(LINK.findall(page.text))
    return seen


@pytest.mark.parametrize("role", ["admin", "secretary", "practitioner"])
def test_every_clinic_page_answers_on_sqlite(demo, role):
    app, clinic = demo
    client = client_for(app, "demo")
    log_in(client, make_staff(app, clinic, role, email=f"walk-{role}@demo.example"))

    statuses = walk(client)

    assert len(statuses) > 8, statuses  # the menu was followed
    assert {p: s for p, s in statuses.items() if s >= 500} == {}


def test_every_console_page_answers_on_sqlite(demo):
    app, _ = demo
    console = client_for(app, "operator")
    log_in(console, make_operator(app, "walk-ops@relais.example"))

    statuses = walk(console)

    assert len(statuses) > 3, statuses
    assert {p: s for p, s in statuses.items() if s >= 500} == {}


def test_without_redis_limits_hold_in_the_process(demo):
    """The embedded run has no Redis: its one process keeps the clinics' limits itself."""
    app, clinic = demo
    from core.clinic import apikeys  # noqa: PLC0415
    from core.web.cli import main  # noqa: PLC0415
    from tenants.scoping import tenant_scope  # noqa: PLC0415

    result = app.test_cli_runner().invoke(
        main, ["limits", "set", "--clinic", "demo", "per_minute=2"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("software", "test")
        db.session.commit()
    api = client_for(app, clinic.slug)
    headers = {"Authorization": f"Bearer {token}"}
    patient = api.get("/api/v1/patients", headers=headers).json["patients"][0]
    body = {"patient_id": patient["id"], "purpose": "otp", "template": "Code 123456"}
    answers = [api.post("/api/v1/messages", json=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
