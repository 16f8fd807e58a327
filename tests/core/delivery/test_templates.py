"""Templates are bounded: a loop bomb, a huge repetition, a division by zero or a huge source
is refused at once with a 4xx naming the template, and nothing is stored: through the API,
a batch, the staff's "send a message" form and the reminders' settings."""

import html
import time

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext

from core.clinic import apikeys
from core.db import db
from core.delivery import outbox, templates
from core.delivery.models import Message
from core.errors import ValidationError
from tenants.scoping import tenant_scope
from tests.worlds import client_for, csrf_token, log_in, make_clinic, make_patient, make_staff

LOOP_BOMB = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{{ a }}{% endfor %}{% endfor %}{% endfor %}"
)
SILENT_LOOP_BOMB = LOOP_BOMB.replace("{{ a }}", "")
BOMBS = {
    "nested loops": LOOP_BOMB,
    "silent nested loops": SILENT_LOOP_BOMB,
    "repetition": "{{ 'x' * 10000000 }}",
    "division by zero": "{{ 1/0 }}",
    "huge source": "Bonjour " * 10_000,  # 80,000 characters: under the body limit
    "huge power": "{{ 2 ** (10 ** 7) }}",
    "format width": "{{ '%0999999999d' % 1 }}",
    "method width": "{{ 'x'.center(999999999) }}",
    "filter width": "{{ 'x'|center(999999999) }}",
    "replace between every character": "{{ ('x' * 90000).replace('', 'y' * 90000) }}",
    "branching macro": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    ),
    "endless recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "state across iterations": (
        "{% set ns = namespace(x='a') %}{% for i in range(40) %}"
        "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}"
    ),
    "a list grown in place": (
        "{% set l = ['x'] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}"
    ),
    "deep parentheses": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "type error": "{{ 'a' - 1 }}",
    "a long output": "{% for i in range(9000) %}{{ 'x' * 90 }}{% endfor %}",
}


@pytest.fixture
def clinic(app):
    return make_clinic(app, "demo", "FR", plugins=("outbox", "fr"))


@pytest.fixture
def api(app, clinic):
    with app.app_context(), tenant_scope(clinic.id):
        _, token = apikeys.create_key("practice software")
        db.session.commit()
    client = client_for(app, clinic.slug)

    def call(path, body):
        headers = {"Authorization": f"Bearer {token}"}
        return client.post(f"/api/v1{path}", json=body, headers=headers)

    return call


def stored(app, clinic) -> int:
    with app.app_context(), tenant_scope(clinic.id):
        return db.session.scalar(sa.select(sa.func.count()).select_from(Message))


@pytest.mark.parametrize("bomb", BOMBS.values(), ids=BOMBS.keys())
def test_a_template_bomb_is_refused_at_once_through_the_api(app, clinic, api, bomb):
    patient = make_patient(app, clinic)
    started = time.monotonic()
    answer = api(
        "/messages",
        {"patient_id": str(patient.id), "purpose": "transactional", "template": bomb},
    )
    assert time.monotonic() - started < 1
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == "template"
    assert stored(app, clinic) == 0


def test_a_template_bomb_in_a_batch_is_refused_on_its_own(app, clinic, api):
    patient = make_patient(app, clinic)
    item = {"patient_id": str(patient.id), "purpose": "transactional"}
    started = time.monotonic()
    answer = api(
        "/messages/batch",
        {"messages": [{**item, "template": SILENT_LOOP_BOMB}, {**item, "template": "Bonjour"}]},
    )
    assert time.monotonic() - started < 1
    assert answer.status_code == 202
    refused, accepted = answer.json["messages"]
    assert refused["error"]["field"] == "messages[0].template"
    assert "id" in accepted and stored(app, clinic) == 1


def french(app, message: str, **variables) -> str:
    with app.test_request_context(), force_locale("fr"):
        return gettext(message, **variables)


@pytest.mark.parametrize(
    ("bomb", "said"),
    [
        ("{{ 1/0 }}", ("The template cannot be rendered: %(e)s", {"e": "division by zero"})),
        (SILENT_LOOP_BOMB, ("This template does too much work.", {})),
        ("{{ 'x' * 10000000 }}", ("This template does too much work.", {})),
    ],
)
def test_the_staff_form_says_what_is_wrong_with_a_template(app, clinic, bomb, said):
    patient = make_patient(app, clinic)
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    path = f"/patients/{patient.id}"
    started = time.monotonic()
    answer = client.post(
        f"{path}/messages", data={"text": bomb, "csrf_token": csrf_token(client, path)}
    )
    assert time.monotonic() - started < 1
    assert answer.status_code == 303
    page = html.unescape(client.get(path).text)
    assert french(app, said[0], **said[1]) in page
    assert stored(app, clinic) == 0


def test_the_reminders_settings_refuse_a_template_that_fails(app):
    clinic = make_clinic(app, "demo", plugins=("fr", "appointments", "reminders", "outbox"))
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))
    token = csrf_token(client, "/settings/reminders")
    for action in ("preview", "save"):
        answer = client.post(
            "/settings/reminders",
            data={
                "csrf_token": token,
                "action": action,
                "language": "en",
                "template_en": "{{ 1/0 }}",
            },
        )
        assert answer.status_code == 422, action
        assert "division by zero" in answer.text


def test_ordinary_templates_still_render(app, clinic):
    with app.app_context():
        content = outbox.render(
            {
                "text": "Bonjour {{ patient }}{% if address %}, {{ address }}{% endif %} "
                "{% for i in range(3) %}{{ loop.index }}{% endfor %} {{ '%s'|format(n) }}",
                "html": "<p>{{ patient|upper }}</p>",
            },
            {"patient": "<Jeanne>", "address": "rue", "n": 4},
        )
    assert content == {"text": "Bonjour <Jeanne>, rue 123 4", "html": "<p>&lt;JEANNE&gt;</p>"}


def test_a_long_letter_turned_to_html_is_not_mistaken_for_a_bomb(app):
    with app.app_context():
        content = outbox.render(
            {"text": "{{ body }}", "html": "{{ body|replace('\\n', '<br>'|safe) }}"},
            {"body": "Une ligne de la lettre.\n" * 2000},  # 48,000 characters
        )
    assert content["html"].count("<br>") == 2000


def test_limits_are_messages_a_user_can_act_on(app):
    with app.app_context(), pytest.raises(ValidationError) as refused:
        outbox.render("x" * (templates.MAX_SOURCE + 1), {})
    assert refused.value.field == "template"
    assert str(templates.MAX_SOURCE) in refused.value.message
