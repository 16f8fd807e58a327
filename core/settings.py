"""Plugin settings: declared by plugins, set by operators per country, stored encrypted.

A plugin may also keep values for the whole deployment (:func:`save_deployment`), e.g. a key
pair every country must share; a country's own value of the same name wins over them.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core.crypto import seal, unseal
from core.db import db, utcnow
from core.errors import ValidationError
from core.plugins import host
from tenants.models import DeploymentSettings, PluginSettings


@dataclass(frozen=True)
class Setting:
    """One setting of a plugin (see the ``relais_plugin_settings`` hook).

    ``parse`` turns the operator's text into the stored value and raises ``ValueError`` with
    a sentence for the operator when the text is not acceptable. A ``secret`` is never shown
    back: leaving its field empty keeps the stored value.
    """

    name: str
    label: str
    default: Any = None
    secret: bool = False
    help: str = ""
    parse: Callable[[str], Any] = str


def schema(plugin: str) -> list[Setting]:
    """The settings a plugin declares (empty if it declares none)."""
    return [s for owner, s in host().collect("relais_plugin_settings") if owner == plugin]


def stored(country_code: str, plugin: str) -> dict[str, Any]:
    """The values stored for a plugin in a country, over its deployment-wide ones."""
    return {**deployment(plugin), **_country(country_code, plugin)}


def _country(country_code: str, plugin: str) -> dict[str, Any]:
    row = db.session.get(PluginSettings, (country_code, plugin))
    return json.loads(unseal(row.sealed)) if row else {}


def deployment(plugin: str) -> dict[str, Any]:
    """The values a plugin keeps for the whole deployment (every country)."""
    row = db.session.get(DeploymentSettings, plugin)
    return json.loads(unseal(row.sealed)) if row else {}


def save_deployment(plugin: str, values: dict[str, Any]) -> None:
    """Store values of a plugin for the whole deployment, encrypted, over those it had.

    For values the code makes (a CLI command generating keys), not an operator's text: they
    are not parsed.
    """
    row = db.session.get(DeploymentSettings, plugin) or DeploymentSettings(plugin=plugin)
    merged = {**(json.loads(unseal(row.sealed)) if row.sealed else {}), **values}
    row.sealed = seal(json.dumps(merged))
    row.updated_at = utcnow()
    db.session.add(row)


def save(country_code: str, plugin: str, form: dict[str, str]) -> dict[str, Any]:
    """Validate and store an operator's settings for a plugin in a country.

    :raises ValidationError: naming the first setting that does not parse; nothing is stored.
    """
    values = _country(country_code, plugin)  # deployment-wide values stay where they are
    for setting in schema(plugin):
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
    row = db.session.get(PluginSettings, (country_code, plugin)) or PluginSettings(
        country_code=country_code, plugin=plugin
    )
    row.sealed = seal(json.dumps(values))
    row.updated_at = utcnow()
    db.session.add(row)
    return values


def by_country(plugin: str, name: str) -> tuple[Any, dict[str, Any]]:
    """A setting everywhere, in one query: its value for the deployment (else the declared
    default) and the countries that set their own."""
    declared = {s.name: s.default for s in schema(plugin)}
    fallback = deployment(plugin).get(name, declared.get(name))
    own = {}
    for row in db.session.scalars(sa.select(PluginSettings).where(PluginSettings.plugin == plugin)):
        value = json.loads(unseal(row.sealed)).get(name)
        if value is not None:
            own[row.country_code] = value
    return fallback, own


def plugin_setting(tenant, plugin: str, name: str) -> Any:
    """A plugin's setting for a clinic: the value set for its country, else for the
    deployment, else the default."""
    value = stored(tenant.country_code, plugin).get(name)
    if value is not None:
        return value
    declared = {s.name: s for s in schema(plugin)}
    if name not in declared:
        raise KeyError(f"plugin {plugin!r} declares no setting {name!r}")
    return declared[name].default


__all__ = [
    "Setting",
    "by_country",
    "deployment",
    "plugin_setting",
    "save",
    "save_deployment",
    "schema",
    "stored",
]
