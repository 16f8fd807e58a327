"""Plugin settings: declared by plugins, set by operators per country, stored encrypted.

A plugin may also keep values for the whole deployment (:func:`save_deployment`), e.g. a key
pair every country must share; a country's own value of the same name wins over them. A
setting declared with ``clinic=True`` may also be chosen by each clinic for itself
(:func:`save_clinic`), and the clinic's choice wins over its country's.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app, g
from flask_babel import gettext as _

from core import configured
from core.clinic.models import ClinicSettings
from core.crypto import seal, unseal
from core.db import db, utcnow
from core.errors import ValidationError
from core.plugins import enabled_plugins, host
from tenants.models import DeploymentSettings, PluginSettings


@dataclass(frozen=True)
class Setting:
    """One setting of a plugin (see the ``relais_plugin_settings`` hook).

    ``parse`` turns the operator's text into the stored value and raises ``ValueError`` with
    a sentence for the operator when the text is not acceptable (with ``choices``, the code
    picked; ``parse`` still checks it). A ``secret`` is never shown
    back: leaving its field empty keeps the stored value.
    """

    name: str
    label: str
    default: Any = None
    secret: bool = False
    help: str = ""
    parse: Callable[[str], Any] = str
    clinic: bool = False  # each clinic's admins may choose it for their clinic
    # A closed list: stored value -> what pages call it (``_l``), offered as a list to pick
    # from; the stored value is a code, the words are the reader's language.
    choices: dict[str, Any] | None = None

    def shown(self, value: Any) -> Any:
        """A stored value as pages show it: its choice's words, if it is one."""
        return (self.choices or {}).get(value, value)


def _remembered(key: tuple, load: Callable[[], Any]) -> Any:
    """Settings read once per application context (a request, a job): a campaign or a
    reminder schedule reads the same ones for every message. Saving forgets them (and the
    process's copy, :mod:`core.configured`)."""
    cache = g.setdefault("_relais_settings", {})
    if key not in cache:
        cache[key] = load()
    return cache[key]


def schema(plugin: str) -> list[Setting]:
    """The settings a plugin declares (empty if it declares none), collected from every
    plugin once per app, at the first use, and kept."""
    # They are the plugins' code, not configuration: a request judging a message asked
    # every plugin for them again (a fiftieth of its time).
    declared = current_app.extensions.get(_DECLARED)
    if declared is None:
        declared = {}
        for owner, setting in host().collect("relais_plugin_settings"):
            declared.setdefault(owner, []).append(setting)
        current_app.extensions[_DECLARED] = declared
    return declared.get(plugin, [])


_DECLARED = "relais_declared_settings"  # in app.extensions: plugin -> its settings


def stored(country_code: str, plugin: str) -> dict[str, Any]:
    """The values stored for a plugin in a country, over its deployment-wide ones."""
    return {**deployment(plugin), **_country(country_code, plugin)}


def _country(country_code: str, plugin: str) -> dict[str, Any]:
    return _remembered(
        ("country", country_code, plugin),
        lambda: _row(("country", country_code, plugin), PluginSettings, (country_code, plugin)),
    )


def deployment(plugin: str) -> dict[str, Any]:
    """The values a plugin keeps for the whole deployment (every country)."""
    return _remembered(
        ("deployment", plugin), lambda: _row(("deployment", plugin), DeploymentSettings, plugin)
    )


def _row(key: tuple, model, primary_key) -> dict[str, Any]:
    """A row's values, decrypted; the process remembers them (:mod:`core.configured`) and
    each context gets its own copy."""
    return dict(
        configured.remembered(
            ("settings", *key), lambda: _unsealed(db.session.get(model, primary_key))
        )
    )


def _unsealed(row) -> dict[str, Any]:
    return json.loads(unseal(row.sealed)) if row else {}


def save_deployment(plugin: str, values: dict[str, Any]) -> None:
    """Store values of a plugin for the whole deployment, encrypted, over those it had.

    For values the code makes (a CLI command generating keys), not an operator's text: they
    are not parsed.
    """
    row = db.session.get(DeploymentSettings, plugin) or DeploymentSettings(plugin=plugin)
    _seal(row, {**deployment(plugin), **values})


def save(
    country_code: str, plugin: str, form: dict[str, str], declared: list[Setting] | None = None
) -> dict[str, Any]:
    """Validate and store an operator's settings for a plugin in a country (``declared``:
    the settings, when the core keeps its own under that name rather than a plugin).

    :raises ValidationError: naming the first setting that does not parse; nothing is stored.
    """
    # Deployment-wide values stay where they are.
    values = _parsed(declared or schema(plugin), _country(country_code, plugin), form)
    row = db.session.get(PluginSettings, (country_code, plugin)) or PluginSettings(
        country_code=country_code, plugin=plugin
    )
    _seal(row, values)
    return values


def clinic_values(tenant, plugin: str) -> dict[str, Any]:
    """The values a clinic chose for itself (its settings declared with ``clinic=True``)."""
    return _remembered(
        ("clinic", tenant.id, plugin),
        lambda: _row(("clinic", tenant.id, plugin), ClinicSettings, (tenant.id, plugin)),
    )


def save_clinic(
    tenant, plugin: str, form: dict[str, str], declared: list[Setting] | None = None
) -> dict[str, Any]:
    """Validate and store a clinic admin's choices for a plugin's clinic settings; an empty
    field goes back to the country's value (``declared``: as :func:`save`'s, every one of
    them the clinic's).

    :raises ValidationError: naming the first setting that does not parse; nothing is stored.
    """
    own = declared or [s for s in schema(plugin) if s.clinic]
    values = _parsed(own, clinic_values(tenant, plugin), form)
    row = db.session.get(ClinicSettings, (tenant.id, plugin)) or ClinicSettings(
        tenant_id=tenant.id, plugin=plugin
    )
    _seal(row, values)
    return values


@dataclass(frozen=True)
class ClinicChoice:
    """A setting a clinic may choose, as its settings page shows it."""

    setting: Setting
    own: Any  # the clinic's choice; None when it follows its country
    inherited: Any  # its country's value, else the deployment's, else the default


def clinic_choices(tenant) -> dict[str, list[ClinicChoice]]:
    """The settings a clinic may choose for itself, by plugin enabled for it (in name order);
    plugins that declare none are left out."""
    choices = {}
    for plugin in sorted(enabled_plugins(tenant)):
        declared = [s for s in schema(plugin) if s.clinic]
        if not declared:
            continue
        own, country = clinic_values(tenant, plugin), stored(tenant.country_code, plugin)
        choices[plugin] = [
            ClinicChoice(
                s,
                own.get(s.name),
                s.default if country.get(s.name) is None else country[s.name],
            )
            for s in declared
        ]
    return choices


def yes_no(text: str) -> bool:
    """Parse a yes/no setting: the pages show a setting whose default is a bool as a choice
    between ``yes`` and ``no``; operators typing ``true``/``false``, ``1``/``0``,
    ``on``/``off`` or ``oui``/``non`` are understood too."""
    answer = text.strip().lower()
    if answer in ("yes", "true", "1", "on", "oui"):
        return True
    if answer in ("no", "false", "0", "off", "non"):
        return False
    raise ValueError(_("Yes or no."))


def _parsed(declared: list[Setting], values: dict[str, Any], form: dict[str, str]) -> dict:
    values = dict(values)
    for setting in declared:
        text = (form.get(setting.name) or "").strip()
        if setting.secret and not text:
            continue  # keep the stored secret
        if not text:
            values.pop(setting.name, None)
            continue
        try:
            values[setting.name] = setting.parse(text)
        except ValueError as exc:
            raise ValidationError(
                _("%(label)s: %(problem)s", label=setting.label, problem=exc), field=setting.name
            ) from exc
    return values


def _seal(row, values: dict[str, Any]) -> None:
    g.pop("_relais_settings", None)  # what was read before is stale now
    row.sealed = seal(json.dumps(values))
    row.updated_at = utcnow()
    db.session.add(row)


def by_country(plugin: str, name: str) -> tuple[Any, dict[str, Any]]:
    """A setting everywhere, in one query: its value for the deployment (else the declared
    default) and the countries that set their own."""
    declared = {s.name: s.default for s in schema(plugin)}
    fallback = deployment(plugin).get(name, declared.get(name))
    own = {}
    for row in db.session.scalars(sa.select(PluginSettings).where(PluginSettings.plugin == plugin)):
        value = _unsealed(row).get(name)
        if value is not None:
            own[row.country_code] = value
    return fallback, own


def plugin_setting(tenant, plugin: str, name: str) -> Any:
    """A plugin's setting for a clinic: the clinic's own choice (for a ``clinic`` setting),
    else the value set for its country, else for the deployment, else the default."""
    values = _remembered(
        ("resolved", tenant.id, tenant.country_code, plugin), lambda: _resolved(tenant, plugin)
    )
    if name not in values:
        raise KeyError(f"plugin {plugin!r} declares no setting {name!r}")
    return values[name]


def _resolved(tenant, plugin: str) -> dict[str, Any]:
    """Every setting of a plugin for a clinic, resolved once per application context: a
    campaign's judging asks for several of them for each message."""
    own, stored_values = clinic_values(tenant, plugin), stored(tenant.country_code, plugin)
    found = {}
    for setting in schema(plugin):
        value = own.get(setting.name) if setting.clinic else None
        if value is None:
            value = stored_values.get(setting.name)
        found[setting.name] = setting.default if value is None else value
    return found


__all__ = [
    "ClinicChoice",
    "Setting",
    "by_country",
    "clinic_choices",
    "clinic_values",
    "deployment",
    "plugin_setting",
    "save",
    "save_clinic",
    "save_deployment",
    "schema",
    "stored",
    "yes_no",
]
