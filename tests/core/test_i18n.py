"""Pages in five languages: a complete catalog for each (English is the source), compiled, and
used by real pages; stored facts (reasons, plugin names, settings values) and dates, numbers and
phones rendered in the reader's language."""

import html
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from core import vocabulary
from core.clinic.models import Patient
from core.db import db
from core.delivery import outbox
from core.delivery.models import Message
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tests.worlds import client_for, csrf_token, log_in, make_clinic, make_patient, make_staff

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "core" / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
SOURCE = "en"  # the language of the code's messages: it has no catalog
LANGUAGES = tuple(lang for lang in vocabulary.LANGUAGES if lang != SOURCE)


def catalog(path: Path):
    assert path.is_file(), (
        f"no {path.relative_to(ROOT)}: start it with pybabel init (docs/translations.md)"
    )
    with path.open("rb") as f:
        return read_po(f) if path.suffix in (".po", ".pot") else read_mo(f)


def messages(cat) -> dict:
    """(context, msgid) -> translation, header excluded. read_mo gives plurals as lists and
    contexts as bytes: both are normalised to compare with read_po's tuples and str."""

    def plain(value):
        if isinstance(value, bytes):
            return value.decode("utf-8")
        return tuple(value) if isinstance(value, list | tuple) else value

    return {(plain(m.context), plain(m.id)): plain(m.string) for m in cat if m.id}


def test_pages_are_offered_in_every_language_of_the_vocabulary(app):
    assert app.config["LANGUAGES"] == vocabulary.LANGUAGES == ("fr", "de", "it", "nl", "en")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_catalog_files_exist(lang):
    assert (TRANSLATIONS / "babel.cfg").is_file()
    assert TEMPLATE.is_file()
    assert (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").is_file(), f"no {lang} catalog"
    assert (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo").is_file(), f"no {lang} .mo"


def test_the_template_holds_every_message_of_the_code():
    """What ``pybabel extract`` (see docs/translations.md) would find is in messages.pot."""
    with (TRANSLATIONS / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    found = set()
    for package in ("core", "tenants", "plugins"):
        for _file, _line, message, _comments, context in extract_from_dir(
            ROOT / package, method_map, options_map, keywords
        ):
            found.add((context, message if isinstance(message, str) else tuple(message)))
    missing = found - set(messages(catalog(TEMPLATE)))
    assert not missing, f"run pybabel extract and update (docs/translations.md): {missing}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated(lang):
    template = catalog(TEMPLATE)
    po = catalog(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po")
    translated = messages(po)

    missing = [key for key in messages(template) if key not in translated]
    assert not missing, f"run pybabel update: not in the {lang} catalog: {missing}"
    empty = [
        key
        for key, string in translated.items()
        if not (all(string) if isinstance(string, tuple) else string)
    ]
    assert not empty, f"untranslated in {lang}: {empty}"
    assert len(po.plural_forms) and po.num_plurals == 2
    for message in po:
        if message.id and isinstance(message.id, tuple):
            assert len(message.string) == po.num_plurals, message.id


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_fuzzy_or_obsolete_entries_and_placeholders_kept(lang):
    po = catalog(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po")
    fuzzy = [m.id for m in po if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy entries in {lang}: review them and drop the flag: {fuzzy}"
    assert not po.obsolete, f"obsolete entries in {lang}: {list(po.obsolete)}"
    # Babel's checkers: %(name)s placeholders of msgid and msgstr must match.
    problems = [(m.id, [str(e) for e in errors]) for m, errors in po.check()]
    assert not problems, problems


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_committed_mo_is_compiled_from_the_po(lang):
    folder = TRANSLATIONS / lang / "LC_MESSAGES"
    po = catalog(folder / "messages.po")
    fresh = io.BytesIO()
    write_mo(fresh, po)
    fresh.seek(0)
    committed = catalog(folder / "messages.mo")

    assert messages(committed) == messages(read_mo(fresh)), (
        "run pybabel compile -d core/translations and commit the .mo"
    )
    assert messages(committed) == {key: string for key, string in messages(po).items() if string}


def test_a_french_clinic_speaks_french_until_asked_for_english(app, clinic_fr):
    client = client_for(app, clinic_fr.slug)

    page = client.get("/login")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "Se connecter" in page.text
    assert "Mot de passe" in page.text
    assert "Log in" not in page.text

    changed = client.post(
        "/language",
        data={"lang": "en", "next": "/login", "csrf_token": csrf_token(client, "/login")},
    )
    assert changed.status_code == 302
    assert changed.headers["Location"].endswith("/login")

    page = client.get("/login")
    assert '<html lang="en">' in page.text
    assert "Log in" in page.text
    assert "Password" in page.text
    assert "Se connecter" not in page.text


def test_domain_errors_and_plural_forms_are_french(app, clinic_fr):
    client = client_for(app, clinic_fr.slug)
    refused = client.post(
        "/login",
        data={
            "email": "nobody@demo.example",
            "password": "not the password",
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    assert refused.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect." in refused.text

    from flask_babel import force_locale, ngettext

    with app.test_request_context(), force_locale("fr"):
        assert ngettext("%(num)d patient", "%(num)d patients", 1) == "1 patient"
        assert ngettext("%(num)d patient", "%(num)d patients", 0) == "0 patient"
        assert ngettext("%(num)d patient", "%(num)d patients", 2) == "2 patients"


# --- the reader's language -------------------------------------------------------------------


def speak(client, lang: str, page: str = "/login") -> None:
    changed = client.post("/language", data={"lang": lang, "csrf_token": csrf_token(client, page)})
    assert changed.status_code == 302


def test_the_switch_offers_five_languages_each_named_in_itself(app, clinic_fr):
    page = client_for(app, clinic_fr.slug).get("/login").text
    options = re.findall(r'<option value="(\w+)" lang="\1"[^>]*>([^<]+)</option>', page)
    assert options == [
        ("fr", "Français"),
        ("de", "Deutsch"),
        ("it", "Italiano"),
        ("nl", "Nederlands"),
        ("en", "English"),
    ]


@pytest.mark.parametrize(("country", "lang"), [("DE", "de"), ("IT", "it"), ("NL", "nl")])
def test_a_clinic_speaks_its_countrys_language(app, country, lang):
    clinic = make_clinic(app, f"clinic-{lang}", country, plugins=(lang,))
    page = client_for(app, clinic.slug).get("/login")
    assert f'<html lang="{lang}">' in page.text


def test_a_swiss_clinic_chooses_french_for_its_pages_and_new_patients(app):
    clinic = make_clinic(app, "geneve", "DE", plugins=("de",))
    admin = client_for(app, clinic.slug)
    log_in(admin, make_staff(app, clinic, "admin"))
    assert '<html lang="de">' in admin.get("/settings/rules").text

    saved = admin.post(
        "/settings/language",
        data={"language": "fr", "csrf_token": csrf_token(admin, "/settings/rules")},
    )
    assert saved.status_code == 302
    visitor = client_for(app, clinic.slug)
    page = visitor.get("/login").text
    assert '<html lang="fr">' in page and "Se connecter" in page
    with app.app_context():
        chosen = db.session.get(Tenant, clinic.id)
        assert chosen.language == "fr"
        db.session.expunge(chosen)
    assert make_patient(app, chosen, phone="+4915112345678").language == "fr"

    refused = admin.post(
        "/settings/language",
        data={"language": "xx", "csrf_token": csrf_token(admin, "/settings/rules")},
    )
    assert refused.status_code == 422  # a ValidationError: the field is named, nothing changes


def refused_campaign(app, clinic, patient):
    """A campaign SMS to a patient who never consented: the French rules refuse it."""
    with app.test_request_context(), tenant_scope(clinic.id):
        who = db.session.get(Patient, (clinic.id, patient.id))
        message = outbox.send(db.session.get(Tenant, clinic.id), who, "campaign", "Nouveau")
        db.session.commit()
        return message.id


def test_a_refusal_is_stored_as_codes_and_read_in_each_readers_language(app, clinic_fr, admin):
    patient = make_patient(app, clinic_fr)
    message_id = refused_campaign(app, clinic_fr, patient)
    client = client_for(app, clinic_fr.slug)
    log_in(client, admin)

    french = client.get(f"/messages/{message_id}").text
    assert "Refusé\u00a0: pas de consentement du patient aux messages non essentiels par SMS" in (
        html.unescape(french)
    )
    assert "no consent" not in french
    speak(client, "en", "/")
    english = client.get(f"/messages/{message_id}").text
    assert "Refused: no consent of the patient to non-essential messages by SMS" in english
    # The API keeps the English text practice software reads.
    with app.app_context(), tenant_scope(clinic_fr.id):
        stored = db.session.get(Message, (clinic_fr.id, message_id))
        assert stored.verdict_phrases == [
            {
                "msgid": "no consent of the patient to non-essential messages by %(channel)s",
                "params": {"channel": {"msgid": "SMS"}},
            }
        ]
        assert stored.verdict_reason.startswith("no consent of the patient")


def test_a_reason_stored_before_codes_is_still_shown(app, clinic_fr, admin):
    message_id = refused_campaign(app, clinic_fr, make_patient(app, clinic_fr))
    with app.app_context(), tenant_scope(clinic_fr.id):
        old = db.session.get(Message, (clinic_fr.id, message_id))
        old.verdict_phrases, old.verdict_reason = None, "an old English reason"
        db.session.commit()
    client = client_for(app, clinic_fr.slug)
    log_in(client, admin)
    assert "Refusé\u00a0: an old English reason" in html.unescape(
        client.get(f"/messages/{message_id}").text
    )


def test_plugin_names_and_settings_values_are_words_of_the_readers_language(app):
    clinic = make_clinic(app, "noms", "FR", plugins=("fr", "appointments", "reminders"))
    client = client_for(app, clinic.slug)
    log_in(client, make_staff(app, clinic, "admin"))

    features = html.unescape(client.get("/settings/features").text)
    assert "<td>Rappels de rendez-vous</td>" in features
    assert "<td>reminders</td>" not in features
    rules = html.unescape(client.get("/settings/rules").text)
    assert '<h2 id="rules-fr">Règles de la France</h2>' in rules
    assert re.search(r"Valeur de votre pays\s: Un seul rendez-vous à la fois par praticien", rules)
    assert ">refuse<" not in rules and ": refuse" not in rules


def test_phones_and_dates_read_the_clinics_way(app, clinic_fr, admin):
    patient = make_patient(app, clinic_fr, phone="+33612345678", birth_date="1950-03-04")
    client = client_for(app, clinic_fr.slug)
    log_in(client, admin)
    page = html.unescape(client.get(f"/patients/{patient.id}").text)
    assert "06 12 34 56 78" in page and "+33612345678" not in page
    assert "4 mars 1950" in page
    foreign = make_patient(app, clinic_fr, first_name="Hans", phone="+4915112345678")
    assert "+49 1511 2345678" in client.get(f"/patients/{foreign.id}").text


def test_a_french_patient_of_a_german_clinic_reads_french_mail_and_pages(app):
    clinic = make_clinic(app, "praxis", "DE", plugins=("de", "appointments", "reminders"))
    doctor = make_staff(app, clinic, "practitioner")
    patient = make_patient(
        app, clinic, phone="+4915112345678", email="ami@example.org", language="fr"
    )
    starts = datetime(2026, 12, 4, 15, tzinfo=UTC)  # 16:00 in Berlin
    with time_machine.travel(datetime(2026, 12, 1, 9, tzinfo=UTC), tick=False):
        with app.test_request_context(), tenant_scope(clinic.id):
            from plugins.features.appointments import service
            from plugins.features.reminders import links

            tenant = db.session.get(Tenant, clinic.id)
            appointment = service.create(
                tenant,
                {
                    "patient_id": str(patient.id),
                    "practitioner_id": str(doctor.id),
                    "starts_at": starts.isoformat(),
                    "duration_minutes": 30,
                },
            )
            db.session.commit()
            token = links.token(tenant, appointment.id)
            sent = db.session.scalars(sa.select(Message)).all()
            (subject,) = [m.content["subject"] for m in sent if m.channels == ["email"]]
        page = client_for(app, clinic.slug).get(f"/appointments/r/{token}").text

    assert subject == "Votre rendez-vous du vendredi 4 décembre 2026 à 16:00"
    assert '<html lang="fr">' in page
    assert "vendredi 4 décembre 2026" in page and "16:00" in page
    assert "Freitag" not in page
