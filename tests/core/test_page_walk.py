"""Every page in every language: ``html lang`` right, and no English message left untranslated.

A seeded clinic (every built-in plugin on, a patient, messages, an appointment) is walked by
a visitor, its admin, its patient and the country operator, in each language of
``LANGUAGES``: every GET page without parameters, and those whose parameters the world gives
(a patient, a message, an appointment, the patient's links). A non-English page fails when
its text holds an English source message whose translation differs (strings that read the
same in both languages are not looked for). A language without a catalog yet reads English:
its walk then checks ``html lang`` only, and ``test_i18n`` says the catalog is missing.
"""

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from babel.messages.pofile import read_po

from core.clinic.models import Patient
from core.db import db, utcnow
from core.delivery import outbox
from core.plugins import DEFAULT_PLUGINS
from core.vocabulary import LANGUAGES
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tests.tenants.test_console import make_operator
from tests.worlds import (
    client_for,
    csrf_token,
    log_in,
    make_clinic,
    make_message,
    make_patient,
    make_staff,
)

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "core" / "translations"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%[sdif]")
SKIPPED = {"static", "metrics.metrics"}  # files and a bearer-token endpoint: no page


def plugin_names() -> list[str]:
    return [m.split(".")[-2] for m in DEFAULT_PLUGINS]


# --- what a page says ------------------------------------------------------------------------


class _Text(HTMLParser):
    """The text a reader meets: text nodes and the attributes read aloud or shown, outside
    scripts, styles and elements in another language (the language switch's own names)."""

    SPOKEN = ("aria-label", "title", "placeholder", "alt")

    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang, self.nodes, self._stack = lang, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        foreign = attrs.get("lang") not in (None, self.lang) or tag in ("script", "style")
        if tag not in ("meta", "link", "input", "br", "img", "hr"):
            self._stack.append(foreign or (bool(self._stack) and self._stack[-1]))
        if not (self._stack and self._stack[-1]) and not foreign:
            spoken = [attrs.get(a) for a in self.SPOKEN]
            if tag == "input" and attrs.get("type") in ("submit", "button"):
                spoken.append(attrs.get("value"))
            self.nodes += [" ".join(v.split()) for v in spoken if v]

    def handle_endtag(self, tag):
        if tag not in ("meta", "link", "input", "br", "img", "hr") and self._stack:
            self._stack.pop()

    def handle_data(self, data):
        text = " ".join(data.split())
        if text and not (self._stack and self._stack[-1]):
            self.nodes.append(text)


def page_text(html: str, lang: str) -> list[str]:
    parser = _Text(lang)
    parser.feed(html)
    return parser.nodes


def english_sources(lang: str) -> list[tuple[str, re.Pattern]]:
    """The source messages the ``lang`` catalog translates differently, each with a pattern
    finding it in a page's text (placeholders match anything). Empty without a catalog."""
    path = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not path.is_file():
        return []
    with path.open("rb") as f:
        catalog = read_po(f)
    found = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for source, translation in zip(ids, strings, strict=False):
            if not translation or translation == source:
                continue
            parts = [" ".join(p.split()) for p in PLACEHOLDER.split(source)]
            literal = "".join(parts).strip()
            if len(literal) < 2 or (len(parts) > 1 and len(literal) < 8):
                continue  # a placeholder with a word or two: too short to tell
            if len(parts) == 1 and " " not in literal:
                pattern = re.compile(rf"^{re.escape(literal)}[.:]?$")  # a word alone: a label
            else:
                pattern = _pattern(source)
            found.append((source, pattern))
    return found


def _pattern(source: str) -> re.Pattern:
    """A message as it reads once rendered: a number where ``%(num)d`` is, a word where a
    placeholder starts or ends it, anything between two pieces of text."""
    pieces = PLACEHOLDER.split(source)
    holes = PLACEHOLDER.findall(source)
    body = re.escape(re.sub(r"\s+", " ", pieces[0]))
    for i, hole in enumerate(holes):
        edge = i == 0 and not pieces[0].strip() or i == len(holes) - 1 and not pieces[-1].strip()
        body += r"\d[\d.,  ]*" if hole.endswith("d") else r"\S+" if edge else ".+?"
        body += re.escape(re.sub(r"\s+", " ", pieces[i + 1]))
    return re.compile(rf"(?<!\w){body}(?!\w)")


def untranslated(html: str, lang: str, sources) -> dict[str, str]:
    """The source messages found in the page, each with the text it was found in."""
    nodes = page_text(html, lang)
    return {source: node for source, pattern in sources for node in nodes if pattern.search(node)}


# --- the world -------------------------------------------------------------------------------


def seed(app):
    """A French clinic with every built-in plugin, and what its pages show."""
    clinic = make_clinic(app, "walk", plugins=plugin_names())
    admin = make_staff(app, clinic, "admin")
    doctor = make_staff(app, clinic, "practitioner")
    patient = make_patient(
        app, clinic, first_name="Zoé", last_name="Quintal", email="zoe@walk.example"
    )
    world = {"clinic": clinic, "admin": admin, "patient": patient}
    with app.test_request_context(), tenant_scope(clinic.id):
        from plugins.features.appointments import service as appointments
        from plugins.features.reminders import links

        tenant = db.session.get(Tenant, clinic.id)
        who = db.session.get(Patient, (clinic.id, patient.id))
        refused = outbox.send(tenant, who, "campaign", "Nouveautés du cabinet", channels=["sms"])
        appointment = appointments.create(
            tenant,
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": (utcnow() + timedelta(days=3)).replace(microsecond=0).isoformat(),
                "duration_minutes": 30,
            },
        )
        db.session.flush()
        from core.clinic import consent
        from core.delivery.access_links import make_token

        world.update(
            refused=refused.id,
            appointment=appointment.id,
            access=make_token(tenant, who),
            consent=urlsplit(consent.link(tenant, who, "email", "withdrawn")).path,
            reminder=links.token(tenant, appointment.id),
        )
        db.session.commit()
    world["sent"] = make_message(app, clinic, patient, text="Bonjour")
    return world


def pages(app, world, subdomain: str) -> list[tuple[str, str]]:
    """``(endpoint, path)`` of every GET page of a host, parameters filled from the world."""
    values = {
        "patient_id": world["patient"].id,
        "message_id": world["refused"],
        "appointment_id": world["appointment"],
        "country": "FR",
    }
    tokens = {
        "patient.access": world["access"],
        "reminders_link.page": world["reminder"],
    }
    found = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in SKIPPED:
            continue
        if (rule.subdomain == "operator") != (subdomain == "operator"):
            continue
        if rule.subdomain not in ("<tenant>", "operator"):
            continue
        wanted = rule.arguments - {"tenant"}
        args = {name: values[name] for name in wanted if name in values}
        if "token" in wanted and rule.endpoint in tokens:
            args["token"] = tokens[rule.endpoint]
        if rule.endpoint == "consent.page":
            found.append((rule.endpoint, world["consent"]))
            continue
        plugins = plugin_names() if "plugin" in wanted else [None]
        for plugin in plugins:
            if plugin:
                args["plugin"] = plugin
            if set(args) != wanted:
                continue
            with app.test_request_context():
                from flask import url_for

                path = url_for(rule.endpoint, tenant=world["clinic"].slug, **args)
            found.append((rule.endpoint, urlsplit(path).path))
    if subdomain != "operator":
        found.append(("messages.view", f"/messages/{world['sent']}"))
    return found


def speaking(client, lang: str, home: str = "/login") -> None:
    client.post("/language", data={"lang": lang, "csrf_token": csrf_token(client, home)})


# --- the walk --------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_speaks_the_readers_language(app, lang):
    world = seed(app)
    slug = world["clinic"].slug
    visitor = client_for(app, slug)
    admin = client_for(app, slug)
    log_in(admin, world["admin"])
    patient = client_for(app, slug)
    way_in = f"/me/access/{world['access']}"
    came_in = patient.post(way_in, data={"csrf_token": csrf_token(patient, way_in)})
    assert came_in.status_code == 302, came_in.text
    operator = client_for(app, "operator")
    log_in(operator, make_operator(app))
    # Half-way through logging in: the code page; a new staff member's first steps.
    halfway = {}
    for name, account in (
        ("at the code", world["admin"]),
        ("enrolling", make_staff(app, world["clinic"], "secretary", enrolled=False)),
    ):
        halfway[name] = client_for(app, slug)
        form = {"email": account.email, "password": account.password}
        form["csrf_token"] = csrf_token(halfway[name], "/login")
        assert halfway[name].post("/login", data=form).status_code == 302
    speaking(visitor, lang)
    speaking(admin, lang, "/")
    speaking(patient, lang, "/me/")
    speaking(operator, lang, "/")
    for client in halfway.values():
        speaking(client, lang)

    sources = english_sources(lang)
    walked, problems = [], []
    for who, client, host in (
        ("visitor", visitor, slug),
        ("admin", admin, slug),
        ("patient", patient, slug),
        ("operator", operator, "operator"),
        *((name, client, slug) for name, client in halfway.items()),
    ):
        for endpoint, path in pages(app, world, host):
            answer = client.get(path)
            answer.close()  # files (scripts) are streamed
            assert answer.status_code < 500, (who, path, answer.status_code)
            if 300 <= answer.status_code < 400 or answer.mimetype != "text/html":
                continue  # a redirect, a file, JSON: no page (refusals are pages: walked)
            walked.append((who, endpoint))
            html = answer.text
            if f'<html lang="{lang}">' not in html:
                problems.append((who, path, "html lang", re.search(r"<html[^>]*>", html)[0]))
            for source, text in sorted(untranslated(html, lang, sources).items()):
                problems.append((who, path, "untranslated", source, text))

    # The walk reached the pages of each kind of reader.
    endpoints = {e for _w, e in walked}
    assert {
        "auth.login",
        "auth.code",
        "otp.staff_phone",
        "home.index",
        "patients.view",
    } <= endpoints
    assert {"messages.view", "settings.rules", "audit.events"} <= endpoints
    assert {"patient.home", "reminders_link.page", "consent.page"} <= endpoints
    assert {"console.index", "console.plugins", "console.plugin_settings"} <= endpoints
    assert not problems, "\n".join(map(str, problems))


def test_the_walk_finds_an_english_message_left_in_a_french_page():
    sources = english_sources("fr")
    page = '<html lang="fr"><body><p>Messaging rules</p><p lang="en">Log out</p>'
    page += '<button aria-label="Disable Rules of France in France">Activé</button></body></html>'
    found = untranslated(page, "fr", sources)
    assert "Messaging rules" in found
    assert "Log out" not in found  # marked as another language
    assert "Disable %(p)s in %(c)s" in found  # an attribute read aloud, with placeholders
    assert not untranslated('<html lang="fr"><p>Règles d\'envoi</p></html>', "fr", sources)
