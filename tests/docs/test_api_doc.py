"""docs/api.md's curl examples, copied out of the page and run with curl against a served
Relais: each answers the status the page gives, with the fields the page shows.

The page's ids are its own: the test puts the real ones in their place as a reader would,
each documented answer's ``"id"`` standing for the id the real answer gave (Marie Curie's
id, once she is created, in the calls that follow). ``$KEY`` is a key of the clinic.
"""

import json
import re
import shlex
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from core.app import create_app
from core.clinic import apikeys
from core.db import db
from tenants.scoping import tenant_scope
from tests.worlds import TEST_CONFIG, make_clinic, make_patient, make_staff

PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
DOCUMENTED = "demo.localhost:5000"  # where the page's examples are sent: the demo
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def examples() -> list[tuple[str, int, str]]:
    """Each ``$ curl`` block of the page: the command, the status after ``→``, the body."""
    found = []
    for block in re.findall(r"```\n(\$ curl.*?)```", PAGE.read_text(), re.S):
        command, _arrow, answer = block.partition("\n→ ")
        status, _newline, body = answer.partition("\n")
        found.append(
            (command.removeprefix("$ ").replace("\\\n", " "), int(status.split()[0]), body)
        )
    return found


@pytest.fixture
def served(app):
    """The app as the demo serves it (``*.localhost:5000``), on a free port of 127.0.0.1."""
    application = create_app({**TEST_CONFIG, "SERVER_NAME": DOCUMENTED.partition(".")[2]})
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield application, server.server_port
    server.shutdown()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_every_example_of_the_api_page_answers_as_documented(app, served):
    application, port = served
    clinic = make_clinic(application, "demo", "FR", plugins=("fr", "outbox", "callbacks"))
    doctor = make_staff(application, clinic, "practitioner")
    make_patient(application, clinic, practitioner_ids=[str(doctor.id)])  # Jeanne Durand
    with application.app_context(), tenant_scope(clinic.id):
        _key, token = apikeys.create_key("practice software")
        db.session.commit()

    ids: dict[str, str] = {}  # the page's id -> the real one
    ran = examples()
    assert len(ran) >= 10
    for command, status, documented in ran:
        for page_id, real_id in ids.items():
            command = command.replace(page_id, real_id)
        argv = shlex.split(command.replace("$KEY", token))
        assert argv[0] == "curl"
        # The page's command, sent to this server instead of the demo's port.
        argv += ["--connect-to", f"{DOCUMENTED}:127.0.0.1:{port}", "-w", "\n%{http_code}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        body, _newline, code = done.stdout.rpartition("\n")
        assert int(code) == status, (command, body)
        answer = json.loads(body) if body else None  # 204 No Content
        missing = {k for k in re.findall(r'"(\w+)":', documented) if not _has_key(answer, k)}
        # The page's items of a list this world leaves empty (a consent's earlier steps).
        assert not missing or _has_empty_list(answer), (command, missing, body)
        page_id = re.search(rf'"id": "({UUID.pattern})"', documented)
        if page_id and isinstance(answer, dict) and "id" in answer:
            ids.setdefault(page_id.group(1), answer["id"])
        for page_item, real_item in zip(
            re.findall(rf'"id": "({UUID.pattern})"', documented),
            _ids(answer),
            strict=False,
        ):
            ids.setdefault(page_item, real_item)


def _has_key(value, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_has_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_has_key(v, key) for v in value)
    return False


def _has_empty_list(value) -> bool:
    if isinstance(value, dict):
        return any(_has_empty_list(v) for v in value.values())
    return isinstance(value, list) and (not value or any(_has_empty_list(v) for v in value))


def _ids(value) -> list[str]:
    """The ids of an answer, in the order the page would show them."""
    if isinstance(value, dict):
        own = [value["id"]] if isinstance(value.get("id"), str) else []
        return own + [i for k, v in value.items() if k != "id" for i in _ids(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ids(v)]
    return []
