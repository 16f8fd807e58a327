"""The API's OpenAPI contract: it names every API route and nothing else, and the app keeps
it: schemathesis sends generated requests (valid and invalid) to every operation, and every
answer must be documented, match its schema and never be a 5xx."""

import os
import re
from collections import defaultdict

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from core.clinic import apikeys
from core.db import db
from core.web import openapi
from core.web.cli import main
from tenants.models import Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.core.api_world import api_world
from tests.worlds import client_for, make_clinic

SEEN: dict[str, set[int]] = defaultdict(set)  # operation -> statuses answered in this module


@pytest.fixture
def world(app):
    """Every API feature and one of each thing: the client, its headers, the real ids."""
    built = api_world(app)
    headers = {"Host": f"{built.clinic.slug}.relais.test", **built.bearer}
    return built.client, headers, built.ids


@pytest.fixture
def api_schema(app, world):
    _client, headers, _ids = world
    return schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", app, headers={"Host": headers["Host"]}
    )


# A request the schema allows may still be refused: a patient id that is no patient, a year
# beyond 2199. And one it does not may be taken: the API reads null and "" as "not given"
# (docs/api.md). The schemas say the shape; the views say the rest, with a 4xx naming the
# field; every answer must still be documented, of its schema, and never a 5xx.
LOOSE = [positive_data_acceptance, negative_data_rejection]
EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",  # CI runs the same examples each time
    suppress_health_check=list(HealthCheck),
)


def api_rules(app) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/v1", "/me/api")) and not rule.endpoint.startswith("api_docs")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_the_document_is_valid_openapi_and_names_every_api_route(app, world):
    client, headers, _ids = world
    answer = client.get("/api/v1/openapi.json", headers={"Host": headers["Host"]})
    assert answer.status_code == 200
    document = answer.json
    validate(document)  # OpenAPI 3.1, every $ref resolved
    assert document["servers"] == [{"url": "https://demo.relais.test"}]
    documented = {
        (path, method.upper()) for path, methods in document["paths"].items() for method in methods
    }
    routes = {
        (rule.replace("<uuid:", "{").replace("<", "{").replace(">", "}"), method)
        for rule, method in api_rules(app)
    }
    assert documented == routes


def test_a_clinic_s_document_holds_only_what_it_enabled(app, world):
    other = make_clinic(app, "plain", "DE", plugins=("de",))
    answer = client_for(app, other.slug).get("/api/v1/openapi.json")
    paths = set(answer.json["paths"])
    assert "/api/v1/messages" in paths
    assert "/api/v1/fhir/Patient" in paths  # the core's
    assert not any("ppointment" in p or "Communication" in p or "/me/api" in p for p in paths)


def test_the_reference_page_lists_each_operation(app, world):
    client, headers, _ids = world
    page = client.get("/api/v1/docs", headers={"Host": headers["Host"]})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "POST /api/v1/messages/batch" in text
    assert "GET /api/v1/fhir/Appointment/{appointment_id}" in text
    assert 'href="/api/v1/openapi.json"' in text


def test_every_answer_matches_the_contract(api_schema, world):
    """Each operation, with the ids of real rows, then with generated ones, then with
    requests that break its schema: answers documented, of their schema, never 5xx."""
    _client, headers, ids = world
    for result in api_schema.get_all_operations():
        operation = result.ok()
        real = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
        runs = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if real:
            runs.insert(0, (GenerationMode.POSITIVE, real))
        for mode, path_parameters in runs:
            strategy = operation.as_strategy(mode, path_parameters=path_parameters)

            @given(case=strategy)
            @settings(EXAMPLES)
            def call(case):
                response = case.call_and_validate(headers=headers, excluded_checks=LOOSE)
                SEEN[f"{case.method} {case.path}"].add(response.status_code)

            try:
                call()
            except Unsatisfiable:  # nothing to break: no parameter, no body
                assert mode is GenerationMode.NEGATIVE


# Stateful: chains of calls that follow the document's links (create a patient, then read and
# change it; queue a message, then read or cancel it; book, then move or cancel; register the
# callback endpoint, then read it, rotate its secret, read its log, remove it).
CHAINS = settings(
    max_examples=int(os.environ.get("RELAIS_STATEFUL_EXAMPLES", "25")),
    stateful_step_count=6,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=list(HealthCheck),
)


def test_chains_of_calls_along_the_links_keep_the_contract(api_schema, world):
    _client, headers, _ids = world
    document = api_schema.raw_schema
    linked = {
        op["operationId"]
        for methods in document["paths"].values()
        for op in methods.values()
        for answer in op["responses"].values()
        if answer.get("links")
    }
    assert {"api_patient_create", "api_message_create"} <= linked
    assert {"appointments_api_appointment_upsert", "callbacks_api_endpoint_save"} <= linked
    steps: list[tuple[str, int]] = []

    class Chains(api_schema.as_state_machine()):
        def before_call(self, case):
            case.headers = {**(case.headers or {}), **headers}  # the clinic's host and key

        def validate_response(self, response, case, **kwargs):
            steps.append((f"{case.method} {case.path}", response.status_code))
            SEEN[f"{case.method} {case.path}"].add(response.status_code)
            case.validate_response(response, headers=headers, excluded_checks=LOOSE)

    Chains.run(settings=CHAINS)
    # A generated id finds nothing: an answered path with an id is a link followed.
    assert any("{" in step for step, status in steps if status < 400), steps


def test_a_link_to_no_operation_or_with_other_parameters_fails_the_document():
    def paths(parameters):
        link = {"operationId": "api_patient_read", "parameters": parameters}
        created = {"responses": {"201": {"links": {"ReadPatient": link}}}}
        read = {"parameters": [{"name": "patient_id", "in": "path"}], "responses": {}}
        return {
            "/p": {"post": {"operationId": "api_patient_create", **created}},
            "/p/{patient_id}": {"get": {"operationId": "api_patient_read", **read}},
        }

    openapi._check_links(paths({"patient_id": "$response.body#/id"}))
    with pytest.raises(LookupError, match="takes"):
        openapi._check_links(paths({"id": "$response.body#/id"}))
    broken = paths({"patient_id": "$response.body#/id"})
    del broken["/p/{patient_id}"]
    with pytest.raises(LookupError, match="to no api_patient_read"):
        openapi._check_links(broken)


# --- the errors fuzzing seldom reaches, asked for on purpose ------------------------------------


def _clinic_id(app):
    with app.app_context(), system_scope():
        return db.session.scalar(sa.select(Tenant.id).where(Tenant.slug == "demo"))


def checked(schema, path: str, method: str, response) -> int:
    """Validate an answer against its operation's schema, and note its status."""
    template = re.sub(r"/[0-9a-f-]{36}(?=/|$)", "/{message_id}", path)
    schema[template][method].validate_response(response)
    SEEN[f"{method} {path}"].add(response.status_code)
    return response.status_code


def test_refusals_match_the_contract(app, world, api_schema):
    client, headers, _ids = world
    host = {"Host": headers["Host"]}

    def call(method, path, **kwargs):
        answer = client.open(path, method=method, **kwargs)
        return checked(api_schema, path, method, answer)

    assert call("GET", "/api/v1/patients", headers=host) == 401
    queued = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"patient_id": "0" * 32, "purpose": "transactional", "template": "x"},
    )
    assert queued.status_code == 422
    message = client.get("/api/v1/patients", headers=headers).json["patients"][0]
    sent = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"patient_id": message["id"], "purpose": "transactional", "template": "Hello"},
    ).json
    path = f"/api/v1/messages/{sent['id']}/cancel"
    assert call("POST", path, headers=headers) == 200
    assert call("POST", path, headers=headers) == 409
    huge = {"messages": [{"patient_id": message["id"]}], "pad": "x" * (5 << 20)}
    assert call("POST", "/api/v1/messages/batch", headers=headers, json=huge) == 413
    assert call("POST", "/me/api/code", headers=host, data="phone=1") == 415
    deep = {"patient_id": message["id"], "purpose": "transactional", "template": "x"}
    for _ in range(40):
        deep = {"variables": deep}
    assert call("POST", "/api/v1/messages", headers=headers, json=deep) == 400
    with app.app_context(), tenant_scope(_clinic_id(app)):
        _key, team = apikeys.create_key("team software", "team")
        db.session.commit()
    to_patient = {"patient_id": message["id"], "purpose": "transactional", "template": "Hi"}
    as_team = {**headers, "Authorization": f"Bearer {team}"}
    assert call("POST", "/api/v1/messages", headers=as_team, json=to_patient) == 403
    assert (
        app.test_cli_runner()
        .invoke(main, ["limits", "set", "--clinic", "demo", "per_minute=1"])
        .exit_code
        == 0
    )
    limited = [call("POST", "/api/v1/messages", headers=headers, json=to_patient) for _ in "ab"]
    assert limited == [202, 429]
    batch = {"messages": [to_patient]}
    assert call("POST", "/api/v1/messages/batch", headers=headers, json=batch) == 429
    codes = [
        call("POST", "/me/api/code", headers=host, json={"phone": "+33612345678"})
        for _ in range(12)
    ]
    assert codes[0] == 202 and 429 in codes


def test_every_documented_error_is_answered_somewhere(app, world):
    """Run with the module: the fuzzing and the refusals above answered each error status the
    document promises."""
    client, headers, _ids = world
    document = client.get("/api/v1/openapi.json", headers={"Host": headers["Host"]}).json
    promised = {
        int(status)
        for methods in document["paths"].values()
        for operation in methods.values()
        for status in operation["responses"]
        if int(status) >= 400
    }
    answered = set().union(*SEEN.values()) if SEEN else set()
    assert promised <= answered, f"never answered: {sorted(promised - answered)}"
