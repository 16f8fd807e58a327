"""docs/plugins.md's examples, copied out of the page word for word and run.

Each file of an example is a fenced block whose first line names it
(``# relais-acme/relais_acme/__init__.py``). The tests write them into a folder, pip-install
the package as a plugin author would, run the Acme plugin's own contract tests, and drive
Relais with the commands the page gives: the smallest plugin's page answers, and a message
goes out through Acme's fake and comes back delivered.
"""

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.app import create_app
from core.db import db
from core.delivery import outbox
from core.delivery.models import Message, MessageStatus
from core.delivery.sweeper import deliver_due_in_process
from core.web.cli import main
from tenants.scoping import tenant_scope
from tests.worlds import (
    TEST_CONFIG,
    HostClient,
    client_for,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"^```[a-z]*\n# (relais-[a-z]+/\S+)\n(.*?)^```\n", re.M | re.S)


def doc_files(project: str) -> dict[str, str]:
    """The files of ``project`` the page shows, by path inside it, as written there."""
    files = {}
    for match in FILE_BLOCK.finditer(DOC.read_text()):
        path, body = match.group(1), match.group(0)
        if path.startswith(f"{project}/"):
            files[path.removeprefix(f"{project}/")] = body.split("\n", 1)[1].rsplit("```", 1)[0]
    return files


def doc_commands(after: str) -> list[str]:
    """The command lines of the first shell block after the sentence ``after``."""
    text = DOC.read_text()
    block = re.search(r"^```\n(.*?)^```", text[text.index(after) :], re.M | re.S)
    return block.group(1).strip().splitlines()


def write_project(folder: Path, project: str) -> Path:
    files = doc_files(project)
    assert "pyproject.toml" in files, f"docs/plugins.md shows no {project}/pyproject.toml"
    for path, body in files.items():
        (folder / project / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / project / path).write_text(body)
    return folder / project


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """Both examples written out and pip-installed into a folder put on sys.path."""
    folder = tmp_path_factory.mktemp("docs")
    target = tmp_path_factory.mktemp("site")
    written = {p: write_project(folder, p) for p in ("relais-hello", "relais-acme")}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), *map(str, written.values())],
        check=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield {"site": target, **written}
    sys.path.remove(str(target))
    for module in ("relais_hello", "relais_acme"):
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def docs_app(app, projects):
    """An app created after the examples are installed: it finds their entry points."""
    application = create_app(TEST_CONFIG)
    application.test_client_class = HostClient
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_acme_plugin_passes_its_contract_tests_as_written(projects):
    tests = projects["relais-acme"] / "tests"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(projects["site"]), str(ROOT)])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", str(tests)],
        cwd=projects["relais-acme"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b9 passed\b", run.stdout), run.stdout


def test_the_smallest_plugin_answers_where_it_is_enabled(docs_app):
    lyon = make_clinic(docs_app, "lyon", "FR", plugins=("fr",))
    enabled = docs_app.test_cli_runner().invoke(
        main, shlex.split(doc_commands("until an operator enables it for a country")[0])[1:]
    )
    assert enabled.exit_code == 0, enabled.output
    client = client_for(docs_app, "lyon")
    log_in(client, make_staff(docs_app, lyon, "secretary"))

    page = client.get("/hello")

    assert page.status_code == 200 and page.text == "<p>Hello, Clinic lyon</p>"
    assert 'href="/hello"' in client.get("/").text


def fake_acme(projects):
    """The page's fake Acme, imported from the conftest.py written out of it."""
    path = projects["relais-acme"] / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("acme_fake", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeAcme()


def test_a_message_goes_out_through_acme_as_the_page_sets_it_up(docs_app, projects):
    import threading

    fake = fake_acme(projects)
    threading.Thread(target=fake.server.serve_forever, daemon=True).start()
    try:
        clinic = make_clinic(docs_app, "lyon", "FR", plugins=("fr",))
        runner = docs_app.test_cli_runner()
        for line in doc_commands("Installed, the operator enables it"):
            if line.startswith("pip install"):
                continue  # done by the fixture
            command, secrets = line, None
            if " | relais " in line:  # the secrets, one line each, on standard input
                command, secrets = line.split(" | ", 1)[1], f"key\n{fake.secret}\n"
            result = runner.invoke(main, shlex.split(command)[1:], input=secrets)
            assert result.exit_code == 0, f"{line}: {result.output}"
        # The fake is not at Acme's address: point the plugin at it, as an operator could.
        moved = runner.invoke(
            main, ["plugins", "configure", "acme", "--country", "FR", f"base_url={fake.url}"]
        )
        assert moved.exit_code == 0, moved.output

        patient = make_patient(docs_app, clinic)
        with docs_app.app_context(), tenant_scope(clinic.id):
            message = outbox.send(clinic, patient, "transactional", "Rendez-vous demain 9 h")
            db.session.commit()
            message_id = message.id
            deliver_due_in_process()
            sent = db.session.scalar(sa.select(Message).where(Message.id == message_id))
            assert (sent.status, sent.provider) == (MessageStatus.SENT, "acme_sms")
            assert fake.received() == [str(message_id)]

            url, headers, body, _form = fake.receipt(sent, "delivered")
        answer = client_for(docs_app, "lyon").post(
            "/webhooks/acme_sms/receipts", data=body, headers=headers
        )
        assert answer.status_code == 204
        with docs_app.app_context(), tenant_scope(clinic.id):
            status = db.session.scalar(sa.select(Message.status).where(Message.id == message_id))
        assert status == MessageStatus.DELIVERED
    finally:
        fake.server.shutdown()
        fake.server.server_close()
