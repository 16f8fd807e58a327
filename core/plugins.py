"""The plugin host: one pluggy PluginManager per app, built-ins and entry points alike.

Built-in plugins are listed in :data:`DEFAULT_PLUGINS` and registered exactly as third-party
ones found in the ``relais.plugins`` entry-point group: the core imports them by name, never
by an import statement. Calls made for a tenant go through :func:`hooks_for`, which reaches
only the plugins enabled for it; calls about a whole country go through
:func:`hooks_for_country`.
"""

import importlib
import importlib.metadata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy
import sqlalchemy as sa
from flask import current_app, g
from sqlalchemy.orm import Mapped, mapped_column

from core import hookspecs
from core.db import db

ENTRY_POINT_GROUP = "relais.plugins"
KINDS = ("channel", "regulation", "feature")

DEFAULT_PLUGINS = (
    "plugins.channels.outbox.plugin",
    "plugins.channels.sms_infobip.plugin",
    "plugins.channels.sms_twilio.plugin",
    "plugins.channels.smtp_email.plugin",
    "plugins.channels.webpush.plugin",
    "plugins.channels.voice_twilio.plugin",
    "plugins.regulations.fr.plugin",
    "plugins.regulations.de.plugin",
    "plugins.regulations.it.plugin",
    "plugins.regulations.nl.plugin",
    "plugins.features.exports.plugin",
    "plugins.features.appointments.plugin",
    "plugins.features.reminders.plugin",
    "plugins.features.otp.plugin",
)


class CountryPlugin(db.Model):
    """A plugin the operator enabled for every clinic of a country."""

    __tablename__ = "country_plugins"

    country_code: Mapped[str] = mapped_column(sa.ForeignKey("countries.code"), primary_key=True)
    plugin: Mapped[str] = mapped_column(sa.String(100), primary_key=True)


class TenantDisabledPlugin(db.Model):
    """A feature a clinic switched off although its country enabled it."""

    __tablename__ = "tenant_disabled_plugins"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    plugin: Mapped[str] = mapped_column(sa.String(100), primary_key=True)


class PluginError(RuntimeError):
    """A plugin cannot be loaded: unknown hook, missing kind, duplicate name."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    kind: str
    version: str
    description: str
    source: str  # "built-in" or "entry point (<distribution>)"


@dataclass(frozen=True)
class MenuItem:
    """An entry of a clinic's navigation menu (see ``relais_menu_items``)."""

    label: str
    endpoint: str
    roles: tuple[str, ...] = ()  # empty: every staff member


class PluginHost:
    """Loads plugins, knows what each one is, and routes tenant calls to enabled ones."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("relais")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}

    def load(self, builtins: tuple[str, ...] = DEFAULT_PLUGINS) -> None:
        """Register the built-ins, then every entry point; fail on any unknown hook."""
        own_version = _own_version()
        for module_name in builtins:
            parts = module_name.split(".")  # plugins.features.<name>.plugin, or pkg.<name>
            name = parts[-2] if parts[-1] == "plugin" else parts[-1]
            self._register(importlib.import_module(module_name), name, own_version, "built-in")
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            self._register(ep.load(), ep.name, version, f"entry point ({dist})")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc

    def _register(self, module: ModuleType, name: str, version: str, source: str) -> None:
        kind = getattr(module, "kind", None)
        if kind not in KINDS:
            raise PluginError(f"plugin {name!r} must declare kind = one of {', '.join(KINDS)}")
        if name in self.info:
            raise PluginError(f"two plugins are named {name!r}")
        # A translatable ``description`` (lazy_gettext) wins over the docstring's first line.
        description = getattr(module, "description", None)
        if description is None:
            summary = (module.__doc__ or "").strip().splitlines()
            description = summary[0] if summary else ""
        # A module may hand its hooks to an object, ``hooks = CountryRules(...)``: the country
        # plugins share one implementation and differ only by data.
        self.pm.register(getattr(module, "hooks", module), name=name)
        self.info[name] = PluginInfo(name, kind, version, description, source)

    def collect(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call a ``register_*`` hook of every plugin, yielding (plugin name, item)."""
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            for item in result or ():
                yield impl.plugin_name, item

    def subset(self, enabled: frozenset[str]) -> "TenantHooks":
        removed = [self.pm.get_plugin(n) for n in self.info if n not in enabled]
        return TenantHooks(self.pm, removed)


class TenantHooks:
    """``hooks_for(tenant).relais_x(...)``: a hook call restricted to enabled plugins."""

    def __init__(self, pm: pluggy.PluginManager, removed: list) -> None:
        self._pm = pm
        self._removed = removed

    def __getattr__(self, hook_name: str):
        return self._pm.subset_hook_caller(hook_name, self._removed)

    def each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call the enabled plugins' implementations one at a time, in pluggy's order,
        yielding (plugin name, answer): for answers the core attributes to their plugin, and
        for hooks where a plugin must see what the ones before it did (amendments compose).
        """
        caller = self._pm.subset_hook_caller(hook_name, self._removed)
        for impl in reversed(caller.get_hookimpls()):
            yield impl.plugin_name, impl.function(**{k: kwargs[k] for k in impl.argnames})


def host() -> PluginHost:
    return current_app.extensions["relais"].plugins


def enabled_plugins(tenant) -> frozenset[str]:
    """The names of the plugins enabled for a clinic: on for its country, not off for it.

    Cached for the application context: a request, a job, a sweeper pass.
    """
    cache = g.setdefault("_relais_enabled", {})
    if tenant.id not in cache:
        with db.session.no_autoflush:
            on = db.session.scalars(
                sa.select(CountryPlugin.plugin).where(
                    CountryPlugin.country_code == tenant.country_code
                )
            ).all()
            off = db.session.scalars(
                sa.select(TenantDisabledPlugin.plugin).where(
                    TenantDisabledPlugin.tenant_id == tenant.id
                )
            ).all()
        cache[tenant.id] = (frozenset(on) - frozenset(off)) & frozenset(host().info)
    return cache[tenant.id]


def hooks_for(tenant) -> TenantHooks:
    """Hook calls on behalf of ``tenant``: only its enabled plugins answer."""
    return host().subset(enabled_plugins(tenant))


def country_plugins_enabled(country_code: str) -> frozenset[str]:
    """The names of the installed plugins the operator enabled for a country."""
    on = db.session.scalars(
        sa.select(CountryPlugin.plugin).where(CountryPlugin.country_code == country_code)
    )
    return frozenset(on) & frozenset(host().info)


def hooks_for_country(country_code: str) -> TenantHooks:
    """Hook calls about a whole country (the console's warnings, the retention job): only
    the plugins enabled for that country answer; clinics' own switches do not apply."""
    return host().subset(country_plugins_enabled(country_code))


def _own_version() -> str:
    try:
        return importlib.metadata.version("relais")
    except importlib.metadata.PackageNotFoundError:
        return "dev"
