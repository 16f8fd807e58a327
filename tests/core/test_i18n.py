"""Pages in English and French: a complete French catalog, compiled, and used by real pages."""

import io
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from tests.worlds import client_for, csrf_token

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "core" / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
LANGUAGES = ("fr",)


def catalog(path: Path):
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


def test_the_catalog_files_exist():
    assert (TRANSLATIONS / "babel.cfg").is_file()
    assert TEMPLATE.is_file()
    for lang in LANGUAGES:
        assert (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").is_file()
        assert (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo").is_file()


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
