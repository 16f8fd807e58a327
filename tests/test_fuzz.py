"""Zero 500s: every route of the app, fuzzed with hypothesis.

The routes come from ``app.url_map``, so a new route is fuzzed as soon as it exists; a route
this suite cannot reach (a path parameter it has no value for) fails
:func:`test_every_route_is_fuzzed_or_excluded_with_a_reason` until it gets a value here or
an entry in :data:`EXCLUDED` with its reason.

- JSON routes (the API, the patients' ``/me/api``, Infobip's webhooks, signed): bodies made
  of a valid one with 1 to 3 values replaced, anywhere in it, by bad ones (wrong types, NUL,
  lone surrogates, huge numbers, years 1 and 9999, long strings, deep nesting), or no object
  at all. A 4xx names the field (400, 413, 422).
- Forms (every POST that is not JSON, with a valid CSRF token, as the clinic's admin, the
  operator, or an anonymous visitor on login pages; Twilio's webhooks signed): the fields the
  app's own pages show, with values the pages offer or bad ones.
- Queries of every GET route: the arguments the routes read, with bad values.

Each answer must be below 500. Bounded for CI: ``RELAIS_FUZZ_EXAMPLES`` examples a route
(10 by default; a deeper run: ``RELAIS_FUZZ_EXAMPLES=200 pytest tests/test_fuzz.py``).
"""

import base64
import functools
import os
import re
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from core.clinic import apikeys
from core.clinic import settings as plugin_settings
from core.clinic.models import Patient, User
from core.db import db
from core.extensions import limiter
from plugins.features import messaging
from plugins.features.campaigns.models import Campaign
from plugins.features.messaging import templates_service
from plugins.features.vaccination import waitlist
from plugins.features.vaccination.models import Campaign as VaccinationCampaign
from plugins.features.vaccination.models import Vaccine
from tenants import provisioning
from tenants.models import ProviderRoute, Tenant
from tenants.scoping import system_scope, tenant_scope
from tests.conftest import empty_state
from tests.plugins.features import vaccination_world
from tests.tenants.test_console import make_operator
from tests.worlds import (
    HostClient,
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_patient,
    make_staff,
)

EXAMPLES = int(os.environ.get("RELAIS_FUZZ_EXAMPLES", "10"))
settings.register_profile(
    "relais-fuzz",
    max_examples=EXAMPLES,
    deadline=None,  # one route's example may wait on argon2; the suite's time is bounded
    database=None,  # nothing kept between runs: CI sees the same suite each time
    derandomize=os.environ.get("CI") == "true",  # CI runs the same examples each time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("relais-fuzz")

# (rule, method): why it is not fuzzed.
EXCLUDED = {
    ("/logout", "POST"): "ends the session the suite uses; reads no input",
    ("/static/<path:filename>", "GET"): "files on disk; reads no input",
}
# Endpoints fuzzed as an anonymous visitor: signing in replaces the session the others use.
ANONYMOUS = ("auth.", "operator_auth.", "otp.", "patient.", "consent.", "reminders_link.")
JSON_ENDPOINTS = ("webpush.subscribe",)
INFOBIP_SECRET = "a-webhook-secret-set-by-the-operator"
TWILIO_TOKEN = "0" * 32
LATER = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()
# The path parameters the world has a value for (a new one needs a value in :func:`world`).
PATH_VALUES = (
    "patient_id",
    "appointment_id",
    "message_id",
    "key_id",
    "user_id",
    "practitioner_id",
    "token",
    "country",
    "plugin",
    "provider",
    "slug",
    "conversation_id",
    "attachment_id",
    "communication_id",
    "template_id",
    "series_id",
    "booking_id",
    "dose_id",
    "centre_id",
    "entry_id",
    "vaccine_id",
    "vaccination_campaign_id",
    "campaign_id",
    "run",
    "action",
    "code",
)

# --- bad values ---------------------------------------------------------------------------------

DEEP = "[" * 50_000 + "]" * 50_000
SPECIAL_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "0",
    "-1",
    "1" + "0" * 20,
    "-" + "9" * 30,
    "1e309",
    "NaN",
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00-12:00",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:59:59-12:00",
    "2026-02-30",
    "24:00",
    "23:59",
    "Europe/Paris",
    "../../etc/passwd",
    "x" * 10_000,
    "Z" * 900_000,  # a "1 MB" name: just under the body limit
    "{{ 1/0 }}",
    "{{ 'x' * 10000000 }}",
    "%s%n%x",
    "null",
    "[]",
    str(uuid.UUID(int=0)),
    "sms",
    "email",
    "fr",
    "transactional",
]
texts = st.one_of(st.text(max_size=20), st.sampled_from(SPECIAL_TEXTS))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    st.just("a\ud800b"),  # a lone surrogate: only JSON can carry one
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value where a value could be replaced."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _paths(inner, (*prefix, i))
    return found


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value.get(head), rest, new)}
    copy = list(value)
    copy[head] = _replaced(copy[head], rest, new)
    return copy


def json_body(draw, base: dict) -> Any:
    """A valid body with 1 to 3 values replaced (or new keys), or something else entirely."""
    kind = draw(st.sampled_from(["mutated"] * 8 + ["deep", "other"]))
    if kind == "deep":
        return DEEP
    if kind == "other" or not base:
        return draw(json_values)
    body = base
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        new_key = draw(st.booleans())
        if new_key or not paths:
            key = draw(st.sampled_from(sorted(_keys(base)) or ["x"]))
            body = {**body, key: draw(json_values)} if isinstance(body, dict) else body
        else:
            body = _replaced(body, draw(st.sampled_from(paths)), draw(json_values))
    return body


def _keys(value: Any) -> set[str]:
    keys = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            keys |= {key} | _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            keys |= _keys(inner)
    return keys


def form_data(draw, fields: dict[str, list[str]], vocabulary: list[str]) -> dict[str, str]:
    """The page's form with 1 to 4 fields changed (to one the pages offer, or a bad one)."""
    data = {name: values[0] for name, values in fields.items() if values}
    names = sorted(fields) or vocabulary
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(names if draw(st.booleans()) else vocabulary))
        offered = fields.get(name) or []
        data[name] = draw(st.sampled_from(offered) if offered and draw(st.booleans()) else texts)
    return data


# --- the world: a clinic with every plugin, its people and records -----------------------------


class _Forms(HTMLParser):
    """The POST forms of a page: for each action, its fields and the values it offers."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, list[str]]] = {}
        self._form: dict[str, list[str]] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            post = a.get("method", "").lower() == "post"
            action = a.get("action", "").split("?")[0]
            self._form = self.forms.setdefault(action, {}) if post else None
        elif self._form is None:
            return
        elif tag in ("input", "textarea", "button") and a.get("name"):
            self._form.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "select":
            self._select = a.get("name")
            self._form.setdefault(self._select or "", [])
        elif tag == "option" and self._select:
            self._form[self._select].append(a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


@dataclass
class World:
    app: Any
    clinic: Any
    admin: HostClient
    operator: HostClient
    bearer: dict[str, str]
    ids: dict[str, str]
    tokens: dict[int, str] = field(default_factory=dict)  # id(client) -> CSRF token
    forms: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def client(self, rule) -> HostClient:
        if rule.subdomain == "operator":
            return self.operator if not rule.endpoint.startswith(ANONYMOUS) else self._anon(rule)
        if rule.subdomain == "hooks" or rule.endpoint.startswith(ANONYMOUS):
            return self._anon(rule)
        return self.admin

    def _anon(self, rule) -> HostClient:
        subdomain = rule.subdomain if rule.subdomain != "<tenant>" else self.clinic.slug
        client = client_for(self.app, subdomain)
        client.anonymous = True
        return client

    def csrf(self, client: HostClient) -> str:
        if id(client) not in self.tokens:
            page = "/login" if getattr(client, "anonymous", False) else "/"
            if "hooks." in client.base_url:
                return ""
            self.tokens[id(client)] = csrf_token(client, page)
        return self.tokens[id(client)]


def _enable_everything(app, clinic) -> None:
    host = app.extensions["relais"].plugins
    with app.app_context(), system_scope():
        for name, info in host.info.items():
            if info.kind != "regulation" or name == "fr":
                provisioning.set_country_plugin("FR", name, True)
        plugin_settings.save(
            "FR",
            "sms_infobip",
            {"api_key": "k", "base_url": "http://127.0.0.1:9", "sender": "Relais"}
            | {"webhook_secret": INFOBIP_SECRET},
        )
        plugin_settings.save(
            "FR",
            "sms_twilio",
            {
                "account_sid": "AC" + "0" * 32,
                "auth_token": TWILIO_TOKEN,
                "sender": "+33939030101",
                "base_url": "http://127.0.0.1:9",
            },
        )
        db.session.add(
            ProviderRoute(country_code="FR", channel="sms", provider="infobip_sms", priority=1)
        )
        db.session.commit()


@pytest.fixture(autouse=True)
def clean_state():
    """The world is built once for the module (:func:`world`) and emptied when it ends."""
    yield


@pytest.fixture(scope="module")
def world(app) -> World:
    clinic = make_clinic(app, "demo", "FR", plugins=("fr",))
    _enable_everything(app, clinic)
    doctor = make_staff(app, clinic, "practitioner", email="dr@demo.example")
    other = make_staff(app, clinic, "secretary", email="sec@demo.example")
    patient = make_patient(app, clinic, practitioner_ids=[str(doctor.id)])
    with app.app_context(), tenant_scope(clinic.id):
        # A patient's request with a file, and a template of the doctor's (messaging).
        tenant = db.session.get(Tenant, clinic.id)
        writer = db.session.get(Patient, (clinic.id, patient.id))
        pdf = [("scan.pdf", b"%PDF-1.4 fuzz")]
        conversation = messaging.start_request(tenant, writer, doctor.id, "Hello", pdf)
        thread = {
            "conversation_id": str(conversation.id),
            "attachment_id": str(db.session.scalar(sa.select(messaging.Attachment.id))),
            "communication_id": str(db.session.scalar(sa.select(messaging.ThreadMessage.id))),
            "template_id": str(
                templates_service.save(
                    db.session.get(User, (clinic.id, doctor.id)), None, "T", "Hi", False
                ).id
            ),
        }
        key, token = apikeys.create_key("practice software")
        spare, _ = apikeys.create_key("spare")
        db.session.commit()
        key_id, spare_id = key.id, spare.id
    admin = client_for(app, clinic.slug)
    log_in(admin, make_staff(app, clinic, "admin"))
    operator = client_for(app, "operator")
    log_in(operator, make_operator(app))
    bearer = {"Authorization": f"Bearer {token}"}
    appointment = admin.post(
        "/api/v1/appointments",
        json={
            "external_id": "A1",
            "patient_id": str(patient.id),
            "practitioner_id": str(doctor.id),
            "starts_at": LATER,
            "duration_minutes": 30,
        },
        headers=bearer,
    )
    assert appointment.status_code == 201, appointment.json
    message = admin.post(
        "/api/v1/messages",
        json={"patient_id": str(patient.id), "purpose": "transactional", "template": "Hi"},
        headers=bearer,
    )
    assert message.status_code == 202, message.json
    vaccination = _vaccination(app, clinic, admin, bearer, patient)
    ids = {
        "patient_id": str(patient.id),
        "appointment_id": appointment.json["id"],
        "message_id": message.json["id"],
        "key_id": str(spare_id),  # revoked by the fuzz: not the suite's own key
        "user_id": str(other.id),  # deactivated by the fuzz: not the suite's admin
        "practitioner_id": str(doctor.id),
        "token": "not-a-token",
        "country": "FR",
        "plugin": "fr",
        "provider": "infobip_sms",
        "slug": clinic.slug,
        **thread,
        **vaccination,
        **_campaign(app, clinic),
        "action": "pause",
        "code": "FR",
    }
    assert set(ids) == set(PATH_VALUES) and key_id
    limiter.enabled = False  # every request should reach its route's checks, not the limiter
    yield World(app, clinic, admin, operator, bearer, ids)
    limiter.enabled = True
    empty_state(app)


def _campaign(app, clinic) -> dict[str, str]:
    """A draft campaign, part of an operator's country-wide run (the campaigns routes)."""
    with app.app_context(), tenant_scope(clinic.id):
        draft = Campaign(
            name="Fuzz",
            default_language="fr",
            templates={"fr": "Bonjour"},
            country_run=uuid.uuid4(),
        )
        db.session.add(draft)
        db.session.commit()
        return {"campaign_id": str(draft.id), "run": str(draft.country_run)}


def _vaccination(app, clinic, admin, bearer, patient) -> dict[str, str]:
    """A centre, a vaccine and both doses booked for the patient (the vaccination routes)."""
    with app.app_context(), tenant_scope(clinic.id):
        vaccine = vaccination_world.add_vaccine()
        centre = vaccination_world.add_centre(vaccines=(vaccine,))
        db.session.commit()
        centre_id, vaccine_id = str(centre.id), str(vaccine.id)
    day = vaccination_world.today()
    booked = admin.post(
        "/api/v1/vaccination/bookings",
        json={
            "patient": str(patient.id),
            "centre": centre_id,
            "vaccine": vaccine_id,
            "first": vaccination_world.at(day + timedelta(days=2), 9).isoformat(),
            "second": vaccination_world.at(day + timedelta(days=30), 9).isoformat(),
        },
        headers=bearer,
    )
    assert booked.status_code == 201, booked.json
    dose = booked.json["doses"][1]["id"]
    with app.app_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        entry = waitlist.join(clinic, who, uuid.UUID(centre_id), uuid.UUID(vaccine_id))
        db.session.commit()
        entry_id = str(entry.id)
        group = VaccinationCampaign(name="Over 65s", min_age=65, attributes=[])
        db.session.add(group)
        db.session.commit()
        group_id = str(group.id)
    return {
        "entry_id": entry_id,
        "vaccine_id": vaccine_id,
        "vaccination_campaign_id": group_id,
        "series_id": booked.json["series"],
        "booking_id": dose,
        "dose_id": dose,
        "centre_id": centre_id,
    }


def concrete(rule, ids: dict[str, str], provider: str | None = None) -> str | None:
    """The rule's path with the world's values, or None when one is missing."""
    values = {}
    for name in rule.arguments:
        if name == "tenant":
            continue
        if name == "provider" and provider:
            values[name] = provider
        elif name in ids:
            values[name] = ids[name]
        else:
            return None
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values.get(m[1], m[0]), rule.rule)


def _routes(app) -> list[tuple[Any, str]]:
    return [
        (rule, method)
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.subdomain))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
        if (rule.rule, method) not in EXCLUDED
    ]


def _is_json(rule, provider: str | None = None) -> bool:
    if rule.endpoint in JSON_ENDPOINTS or rule.rule.startswith(("/api/", "/me/api/")):
        return True
    return rule.rule.startswith("/webhooks/") and provider == "infobip_sms"


def _json_bases(world: World) -> dict[str, Any]:
    """A valid body for each JSON route (by rule), that the fuzz then spoils."""
    patient_id = world.ids["patient_id"]
    message = {"patient_id": patient_id, "purpose": "transactional", "template": "Bonjour"}
    message |= {"variables": {"name": "Ana"}, "channels": ["sms"], "not_before": LATER}
    report = {
        "messageId": "m1",
        "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
        "error": {"groupName": "OK", "name": "NO_ERROR"},
        "doneAt": "2026-05-04T10:00:00.000+0200",
    }
    reply = {"from": "33612345678", "to": "Relais", "text": "OUI"}
    reply |= {"receivedAt": "2026-05-04T10:00:00.000+0200", "messageId": "r1"}
    appointment = {"starts_at": LATER, "duration_minutes": 30, "status": "booked"}
    appointment |= {"location": "Cabinet", "reason": "Visite"}
    later = {"first": LATER, "second": LATER, "starts_at": LATER}
    with world.app.app_context(), tenant_scope(world.clinic.id):
        vaccine_id = str(db.session.scalar(sa.select(Vaccine.id)))
    vaccination = {"patient": patient_id, "centre": world.ids["centre_id"]}
    return {
        "/api/v1/vaccination/bookings": vaccination
        | {"vaccine": vaccine_id, "first": later["first"], "second": later["second"]},
        "/api/v1/vaccination/bookings/<uuid:series_id>/cancel": {"patient": patient_id},
        "/api/v1/vaccination/bookings/dose/<uuid:booking_id>/move": {"patient": patient_id}
        | {"starts_at": later["starts_at"]},
        "/api/v1/patients": {"first_name": "Ana", "last_name": "Lima", "phone": "0612345670"}
        | {"birth_date": "1980-01-01", "timezone": "Europe/Paris", "attributes": []}
        | {"practitioner_ids": [world.ids["practitioner_id"]], "language": "fr"},
        "/api/v1/patients/<uuid:patient_id>": {"last_name": "Lima", "email": "a@b.example"},
        "/api/v1/patients/<uuid:patient_id>/consents": {"channel": "sms", "action": "given"},
        "/api/v1/messages": message,
        "/api/v1/messages/batch": {"messages": [message | {"reference": "r1"}]},
        "/api/v1/appointments": appointment
        | {"external_id": "A2", "patient_id": patient_id}
        | {"practitioner_id": world.ids["practitioner_id"]},
        "/api/v1/appointments/<uuid:appointment_id>": appointment,
        "/me/api/code": {"phone": "0612345678", "channel": "sms"},
        "/me/api/code/verify": {"challenge": str(uuid.UUID(int=1)), "code": "123456"},
        "/me/api/signup": {"first_name": "Ana", "last_name": "Lima", "birth_date": "1980-01-01"},
        "/me/notifications/subscriptions": {
            "endpoint": "https://push.example/x",
            "keys": {"p256dh": "BOr", "auth": "abc"},
        },
        "/webhooks/<provider>/receipts": {"results": [report]},
        "/webhooks/<provider>/<country>/inbound": {"results": [reply]},
    }


def _infobip_auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"r:{INFOBIP_SECRET}".encode()).decode()}


def _plan(world: World) -> list[tuple[Any, str, str | None, str]]:
    """(rule, method, provider, path) of every route to fuzz."""
    plan = []
    for rule, method in _routes(world.app):
        providers = ["infobip_sms", "twilio_sms"] if "provider" in rule.arguments else [None]
        for provider in providers:
            path = concrete(rule, world.ids, provider)
            if path is not None:
                plan.append((rule, method, provider, path))
    return plan


def _check(answer, where: str, sent: Any, json_route: bool) -> None:
    answer.get_data()  # a streamed answer (a CSV) runs to its end, as a browser reads it
    answer.close()
    assert answer.status_code < 500, f"{where} answered {answer.status_code} to {sent!r:.300}"
    if json_route and answer.status_code in (400, 413, 422) and answer.is_json:
        body = answer.json or {}
        error = body.get("error") or {}
        fhir = [i.get("expression") for i in body.get("issue", [])]  # FHIR's OperationOutcome
        assert error.get("field") or all(fhir), f"{where} answered {body} to {sent!r:.300}"


# --- the tests ---------------------------------------------------------------------------------


def test_every_route_is_fuzzed_or_excluded_with_a_reason(app):
    values = dict.fromkeys(PATH_VALUES, "x")
    missing = [
        f"{method} {rule.rule}"
        for rule, method in _routes(app)
        if concrete(rule, values, "infobip_sms") is None
    ]
    assert not missing, f"give these a path value in tests/test_fuzz.py, or exclude them: {missing}"
    assert all(reason.strip() for reason in EXCLUDED.values())
    known = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods}
    assert set(EXCLUDED) <= known, "an excluded route no longer exists"


def test_json_routes_never_answer_5xx_and_name_the_field(world):
    bases = _json_bases(world)
    failures = []
    for rule, method, provider, path in _plan(world):
        if method in ("POST", "PATCH") and _is_json(rule, provider):
            base = bases.get(rule.rule, {})
            headers = _infobip_auth() if provider == "infobip_sms" else world.bearer
            send = functools.partial(_send_json, world.client(rule), method, path, base, headers)
            failures += _fuzz(send, f"{method} {path}")
    assert not failures, "\n".join(failures)


def _send_json(client, method, path, base, headers, data) -> None:
    body = json_body(data.draw, base)
    kwargs = {"data": body, "content_type": "application/json"}
    if body is not DEEP:
        kwargs = {"json": body}
    answer = client.open(path, method=method, headers=headers, **kwargs)
    _check(answer, f"{method} {path}", body, json_route=True)


def test_forms_never_answer_5xx(world):
    pages = _scraped_forms(world)
    vocabulary = sorted({name for fields in pages.values() for name in fields} - {"csrf_token"})
    failures = []
    for rule, method, provider, path in _plan(world):
        if method != "POST" or _is_json(rule, provider):
            continue
        if rule.rule.startswith("/webhooks/") and provider != "twilio_sms":
            continue
        client = world.client(rule)
        token = None if provider == "twilio_sms" else world.csrf(client)
        fields = pages.get(path, {})
        send = functools.partial(_send_form, client, path, fields, vocabulary, token)
        failures += _fuzz(send, f"POST {path}")
    assert not failures, "\n".join(failures)


def _send_form(client, path, fields, vocabulary, token, data) -> None:
    form = form_data(data.draw, fields, vocabulary)
    headers = {}
    if token is None:  # Twilio's webhook: signed as Twilio signs
        url = f"{client.base_url}{path}"
        headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    else:
        form["csrf_token"] = token
    answer = client.post(path, data=form, headers=headers)
    _check(answer, f"POST {path}", form, json_route=path.startswith("/me/api/"))


QUERY_NAMES = [
    "page",
    "q",
    "date",
    "from",
    "to",
    "status",
    "practitioner",
    "patient",
    "channel",
    "purpose",
    "group",
    "view",
    "language",
    "to_check",
    "before",
    "after",
    "actor",
    "action",
    "_count",
    "start",
    "end",
    "country",
    "tenant",
    "kind",
]


def test_queries_never_answer_5xx(world):
    failures = []
    for rule, method, _provider, path in _plan(world):
        if method == "GET" and not _is_file(path):
            headers = world.bearer if path.startswith("/api/") else {}
            send = functools.partial(_send_query, world.client(rule), path, headers)
            failures += _fuzz(send, f"GET {path}")
    assert not failures, "\n".join(failures)


def _send_query(client, path, headers, data) -> None:
    query = data.draw(st.dictionaries(st.sampled_from(QUERY_NAMES), texts, max_size=3))
    answer = client.get(path, query_string=query, headers=headers)
    _check(answer, f"GET {path}", query, json_route=path.startswith("/api/"))


def _is_file(path: str) -> bool:
    """A script, a style sheet, a sound: read from disk, no input to fuzz."""
    return path.endswith((".js", ".css", ".wav"))


def _fuzz(send, where: str) -> list[str]:
    """Run ``send(data)`` on hypothesis's examples; what went wrong, if anything."""

    @FUZZ
    @given(data=st.data())
    def probe(data):
        send(data=data)

    try:
        probe()
    except Exception as exc:  # noqa: BLE001 (an assertion, or the app crashed in the client)
        errors = exc.exceptions if isinstance(exc, ExceptionGroup) else [exc]
        return [_described(where, error) for error in errors]
    return []


def _described(where: str, error: BaseException) -> str:
    if isinstance(error, AssertionError):
        return str(error).splitlines()[0]
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "/tests/" not in f.filename]
    at = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    return f"{where} raised {error!r:.300} at {at}"


def _scraped_forms(world: World) -> dict[str, dict[str, list[str]]]:
    """The POST forms of every page the app shows (with the world's ids), by action."""
    forms: dict[str, dict[str, list[str]]] = {}
    for rule, method, _provider, path in _plan(world):
        if method != "GET" or rule.rule.startswith(("/api/", "/webhooks/")) or _is_file(path):
            continue
        page = world.client(rule).get(path)
        if page.status_code != 200 or page.mimetype != "text/html":
            continue
        parser = _Forms()
        parser.feed(page.text)
        for action, fields in parser.forms.items():
            merged = forms.setdefault(action or path, {})
            for name, values in fields.items():
                merged.setdefault(name, [])
                merged[name] += [v for v in values if v not in merged[name]]
    return forms
