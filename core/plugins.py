"""The plugin host: one pluggy PluginManager per app, built-ins and entry points alike.

Built-in plugins are listed in :data:`DEFAULT_PLUGINS` and registered exactly as third-party
ones found in the ``relais.plugins`` entry-point group: the core imports them by name, never
by an import statement. Calls made for a tenant go through :func:`hooks_for`, which reaches
only the plugins enabled for it; calls about a whole country go through
:func:`hooks_for_country`.

Every call goes through pluggy (``HookCaller.__call__`` of a subset caller), wrappers,
tracing and errors included. Where the core needs each plugin's own answer, in turn
(:meth:`TenantHooks.each`, :meth:`PluginHost.collect`), it calls one subset caller per
plugin. The callers are kept per enabled set (:meth:`PluginHost.subset`), so a request does
not rebuild them and a changed enablement, being another set, gets its own.

A feature that calls hooks of its own declares them in a hookspec module named by its
plugin module's ``hookspecs`` attribute (see ``plugins/features/appointments/hookspecs.py``);
the host adds them with ``pm.add_hookspecs`` as it registers the plugin.
"""

import functools
import importlib
import importlib.metadata
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
import sqlalchemy as sa
from flask import current_app, g, has_app_context
from flask_babel.speaklater import LazyString
from sqlalchemy.orm import Mapped, mapped_column

from core import configured, hookspecs
from core.db import db

ENTRY_POINT_GROUP = "relais.plugins"
KINDS = ("channel", "regulation", "feature")
SUBSETS_KEPT = 256  # enabled sets whose callers are kept (see PluginHost.subset)

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
    "plugins.features.callbacks.plugin",
    "plugins.features.appointments.plugin",
    "plugins.features.reminders.plugin",
    "plugins.features.otp.plugin",
    "plugins.features.messaging.plugin",
    "plugins.features.vaccination.plugin",
    "plugins.features.campaigns.plugin",
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
    # The folder of the plugin module's package (where its migrations/ are), or None for a
    # lone top-level module.
    folder: Path | None = None
    # What pages call it: the module's ``name = _l("...")``, in the reader's language; else
    # its id.
    title: Any = None

    def __post_init__(self) -> None:
        if self.title is None:
            object.__setattr__(self, "title", self.name)


@dataclass(frozen=True)
class MenuItem:
    """An entry of a clinic's navigation menu (see ``relais_menu_items``).

    ``section`` says where it goes: ``"daily"`` (the daily work, in the top bar, ``order``
    placing it among the others: the agenda's 10 puts it right after Home, the patients are
    20 and the messages 30) or ``"settings"`` (under the Settings menu, with the clinic's
    settings and figures).
    """

    label: str
    endpoint: str
    roles: tuple[str, ...] = ()  # empty: every staff member
    section: str = "daily"
    order: int = 100


@dataclass(frozen=True)
class ConsolePage:
    """A feature's page in the operator console (see ``relais_register_console_pages``):
    the blueprint holding its routes, and the entry of the console's navigation, ``label``
    linking to ``endpoint`` (a route of that blueprint)."""

    blueprint: Any
    label: str
    endpoint: str


@dataclass(frozen=True)
class DashboardAction:
    """A button of a :class:`DashboardLine`: a form POSTed (with its CSRF token) to ``url``,
    e.g. a patient's "Confirm" of an appointment on their home page. The route answers with
    a redirect back to the page."""

    label: str
    url: str
    primary: bool = False  # the line's main action, shown as the main button


@dataclass(frozen=True)
class DashboardLine:
    """One thing of a :class:`DashboardItem`: e.g. ``"09:30 Jeanne Durand, Dr Martin"``,
    its state (``"Confirmed"``), where to see it, and the buttons that act on it."""

    text: str
    state: str = ""
    url: str | None = None
    tone: str = ""  # "attention": someone must act (shown in red); "ok": settled (green)
    actions: tuple[DashboardAction, ...] = ()


@dataclass(frozen=True)
class DashboardItem:
    """Work waiting for a clinic's staff, on its home page (see ``relais_dashboard_items``):
    a title, how many things wait, where they are handled, and the first few of them.

    A patient's home page (``relais_patient_home_cards``) shows the same cards: there
    ``count`` is what calls for the patient (unread answers, appointments to confirm; 0
    shows no figure) and ``url`` may be empty (no "See all" link)."""

    title: str
    count: int
    url: str
    lines: tuple[DashboardLine, ...] = ()
    empty: str = ""  # what the card says when nothing waits, e.g. "No appointment today"
    order: int = 100  # among the cards: today's appointments (10) come first
    note: str = ""  # a sentence under the title, e.g. what the choices below change


class PluginHost:
    """Loads plugins, knows what each one is, and routes tenant calls to enabled ones.

    Every hook call goes through pluggy's calling machinery, so a plugin's
    ``@hookimpl(wrapper=True)`` wraps it, an exception surfaces as pluggy reports it, and
    :meth:`pluggy.PluginManager.add_hookcall_monitoring` (the ``TRACE_HOOKS`` setting) sees it.
    """

    def __init__(self, trace: bool = False) -> None:
        self.pm = pluggy.PluginManager("relais")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        # One TenantHooks per enabled set, shared by every clinic with that set: a country's
        # clinics mostly share one, so a handful cover a deployment; bounded all the same.
        self.subset = functools.lru_cache(maxsize=SUBSETS_KEPT)(self._subset)
        self._everyone = TenantHooks(self.pm, frozenset())
        if trace:
            HookTracer(logging.getLogger(TRACE_LOGGER)).install(self.pm)

    def load(self, builtins: tuple[str, ...] = DEFAULT_PLUGINS) -> None:
        """Register the built-ins, then every entry point; fail on any unknown hook."""
        relais_version = own_version()
        for module_name in builtins:
            parts = module_name.split(".")  # plugins.features.<name>.plugin, or pkg.<name>
            name = parts[-2] if parts[-1] == "plugin" else parts[-1]
            self._register(importlib.import_module(module_name), name, relais_version, "built-in")
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            self._register(ep.load(), ep.name, version, f"entry point ({dist})")
        self._check_pending()

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
        # A feature declares the hooks it calls in a module of its own, named by its
        # ``hookspecs`` attribute; pluggy checks implementations registered before it then.
        specs = getattr(module, "hookspecs", None)
        if specs is not None:
            try:
                self.pm.add_hookspecs(specs)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(f"plugin {name!r} cannot add its hookspecs: {exc}") from exc
        # A module may hand its hooks to an object, ``hooks = CountryRules(...)``: the country
        # plugins share one implementation and differ only by data.
        plugin = getattr(module, "hooks", module)
        if type(plugin).__eq__ is not object.__eq__ or type(plugin).__hash__ is not object.__hash__:
            # pluggy keeps the plugins a call leaves out in a set: an object equal by value
            # (a dataclass hashing a lazily translated name) would be found there or not
            # depending on the reader's language, and another clinic's plugin would answer.
            raise PluginError(
                f"plugin {name!r}: its hooks object must compare as itself; "
                "declare its dataclass with eq=False"
            )
        self.pm.register(plugin, name=name)
        folder = Path(module.__file__).resolve().parent if module.__package__ else None
        title = getattr(module, "name", None)  # a display name (lazy_gettext), if declared
        title = title if isinstance(title, str | LazyString) else None
        self.info[name] = PluginInfo(name, kind, version, description, source, folder, title)
        # Subset callers name the plugins they leave out: a new plugin changes every one.
        self.subset.cache_clear()
        self._everyone = TenantHooks(self.pm, frozenset())

    def _check_pending(self) -> None:
        """Every implemented hook must be declared, by the core or by an installed feature."""
        for hook_name, caller in vars(self.pm.hook).items():
            if hook_name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} implements {hook_name!r}, which neither "
                        "the core nor any installed plugin declares: a misspelled hook, or "
                        "the hook of a feature that is not installed (install it, or mark "
                        "the implementation @hookimpl(optionalhook=True))"
                    )
        try:  # whatever else pluggy checks
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc

    def collect(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call a ``register_*`` hook of every plugin, yielding (plugin name, item)."""
        for plugin, answer in self._everyone.each(hook_name, **kwargs):
            for item in answer or ():
                yield plugin, item

    def _subset(self, enabled: frozenset[str]) -> "TenantHooks":
        return TenantHooks(self.pm, frozenset(n for n in self.info if n not in enabled))


class TenantHooks:
    """``hooks_for(tenant).relais_x(...)``: a hook call restricted to enabled plugins.

    Made once per enabled set (see :meth:`PluginHost.subset`); it keeps the pluggy callers it
    makes, one per hook for plain calls and one per hook and plugin for :meth:`each`.
    """

    def __init__(self, pm: pluggy.PluginManager, removed: frozenset[str]) -> None:
        self._pm = pm
        self._removed = [pm.get_plugin(n) for n in removed]
        self._callers: dict[str, pluggy.HookCaller] = {}
        self._solo: dict[str, list[tuple[str, pluggy.HookCaller]]] = {}

    def __getattr__(self, hook_name: str) -> pluggy.HookCaller:
        if hook_name.startswith("_"):  # copy, pickle and their like probe dunders
            raise AttributeError(hook_name)
        caller = self._callers.get(hook_name)
        if caller is None:
            caller = self._callers[hook_name] = self._pm.subset_hook_caller(
                hook_name, self._removed
            )
        return caller

    def each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call the enabled plugins one at a time, in pluggy's order, yielding
        (plugin name, answer), None when a plugin had nothing to say.

        For answers the core attributes to their plugin (which regulation gave a verdict), and
        for hooks where a plugin must see what the ones before it did (amendments compose):
        the next plugin is called only when the caller asks for the next answer. Each is a
        hook call of its own, through a caller that leaves out every other answering plugin
        but keeps the enabled wrappers: a ``wrapper=True`` implementation wraps each answer.
        """
        callers = self._solo.get(hook_name)
        if callers is None:
            callers = self._solo[hook_name] = self._solo_callers(hook_name)
        for plugin, caller in callers:
            result = caller(**kwargs)
            if caller.spec is not None and caller.spec.opts.get("firstresult"):
                yield plugin, result
            else:
                for answer in result or [None]:
                    yield plugin, answer

    def _solo_callers(self, hook_name: str) -> list[tuple[str, pluggy.HookCaller]]:
        """(plugin, its caller) for each enabled plugin answering ``hook_name``, in call order.

        A plugin both wrapping and answering the same hook (two implementations, ``specname``)
        is kept in every caller, so its answer would come with each plugin's: none does.
        """
        impls = getattr(self, hook_name).get_hookimpls()
        wrappers = {i.plugin for i in impls if i.wrapper or i.hookwrapper}
        answering = [i for i in reversed(impls) if not (i.wrapper or i.hookwrapper)]
        everyone = set(self._pm.get_plugins())
        return [
            (
                impl.plugin_name,
                self._pm.subset_hook_caller(hook_name, everyone - wrappers - {impl.plugin}),
            )
            for impl in answering
        ]


def host() -> PluginHost:
    return current_app.extensions["relais"].plugins


def enabled_plugins(tenant) -> frozenset[str]:
    """The names of the plugins enabled for a clinic: on for its country, not off for it.

    Read once per application context (a request, a job, a sweeper pass) and remembered
    by the process for ``RELAIS_CONFIG_SECONDS``: every process sees a
    change within that time, this process at once; a change written in this context
    (flushed) is seen at once. The callers it leads to (:func:`hooks_for`) are kept per
    enabled set, not per clinic: a changed set simply finds other callers.
    """
    cache = g.setdefault("_relais_enabled", {})
    if tenant.id not in cache:
        cache[tenant.id] = configured.remembered(
            ("enabled", tenant.id, tenant.country_code), lambda: _enabled(tenant)
        )
    return cache[tenant.id]


def _enabled(tenant) -> frozenset[str]:
    with db.session.no_autoflush:
        on = db.session.scalars(
            sa.select(CountryPlugin.plugin).where(CountryPlugin.country_code == tenant.country_code)
        ).all()
        off = db.session.scalars(
            sa.select(TenantDisabledPlugin.plugin).where(
                TenantDisabledPlugin.tenant_id == tenant.id
            )
        ).all()
    return (frozenset(on) - frozenset(off)) & frozenset(host().info)


@sa.event.listens_for(CountryPlugin, "after_insert")
@sa.event.listens_for(CountryPlugin, "after_delete")
@sa.event.listens_for(TenantDisabledPlugin, "after_insert")
@sa.event.listens_for(TenantDisabledPlugin, "after_delete")
def _forget_enablement(mapper, connection, target) -> None:
    """An enablement written in this context: read it again at the next hook call."""
    if has_app_context():
        g.pop("_relais_enabled", None)


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


# --- tracing ----------------------------------------------------------------------------------

TRACE_LOGGER = "relais.hooks"

# Arguments whose value is a word of the core's vocabulary or a status time, safe to show as
# it is; any other text (a reply, a name, a phone number, a code) is shown by its length only,
# any other value by its type (a number, a birth date).
PLAIN_ARGUMENTS = frozenset({"country_code", "channel", "status", "change", "at"})


class HookTracer:
    """Logs every hook call, its plugins, how many answered and how long it took.

    Arguments are redacted: objects appear as their type and id, text as its length (but
    for the few arguments in :data:`PLAIN_ARGUMENTS`), answers only as a count, exceptions
    by their type: a patient's name, phone number, a message's text, a code or a secret
    never reaches the log.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._started = threading.local()  # a stack per thread: hooks call hooks

    def install(self, pm: pluggy.PluginManager) -> None:
        """Trace every call of ``pm``'s hooks from now on."""
        # Turning tracing on asks for these lines: shown at INFO even where logging is not
        # configured (the web and worker processes configure none), on stderr.
        if self.logger.level == logging.NOTSET:
            self.logger.setLevel(logging.INFO)
        if not self.logger.hasHandlers():
            self.logger.addHandler(logging.StreamHandler())
        pm.add_hookcall_monitoring(self._before, self._after)

    def _before(self, hook_name: str, impls: Sequence, kwargs: Mapping[str, Any]) -> None:
        stack = self._started.__dict__.setdefault("stack", [])
        stack.append(time.perf_counter())

    def _after(self, outcome, hook_name: str, impls: Sequence, kwargs: Mapping[str, Any]) -> None:
        elapsed = (time.perf_counter() - self._started.stack.pop()) * 1000
        if not self.logger.isEnabledFor(logging.INFO):
            return
        arguments = ", ".join(f"{k}={redacted(k, v)}" for k, v in kwargs.items())
        plugins = ",".join(i.plugin_name for i in reversed(impls)) or "none"
        if outcome.exception is not None:
            told = f"raised {type(outcome.exception).__name__}"
        else:
            result = outcome.get_result()
            count = len(result) if isinstance(result, list) else int(result is not None)
            told = f"{count} answer{'s' if count != 1 else ''}"
        self.logger.info(
            "%s(%s) plugins=%s: %s in %.2f ms", hook_name, arguments, plugins, told, elapsed
        )


def redacted(name: str, value: Any) -> str:
    """How a hook argument appears in the trace: nothing a patient told, only what it is."""
    if value is None or isinstance(value, bool | uuid.UUID):
        return str(value)
    if name in PLAIN_ARGUMENTS and isinstance(value, str | datetime):
        return repr(value) if isinstance(value, str) else value.isoformat()
    if isinstance(value, str | bytes):
        return f"<{type(value).__name__}, {len(value)} chars>"
    if isinstance(value, list | tuple | set | frozenset | dict):
        return f"<{type(value).__name__}, {len(value)} items>"
    ident = _identity(value)
    return f"<{type(value).__name__} {ident}>" if ident is not None else f"<{type(value).__name__}>"


def _identity(value: Any) -> Any:
    """A mapped row's primary key without loading anything (tracing must not query)."""
    state = sa.inspect(value, raiseerr=False)
    identity = getattr(state, "identity", None)
    if identity:
        return "/".join(str(part) for part in identity)  # (tenant id, id) for tenant rows
    return getattr(value, "__dict__", {}).get("id")


def own_version() -> str:
    try:
        return importlib.metadata.version("relais")
    except importlib.metadata.PackageNotFoundError:
        return "dev"
