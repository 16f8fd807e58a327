"""The application factory."""

import gc
from dataclasses import dataclass, field
from pathlib import Path

from babel import Locale
from flask import Flask, abort, g, jsonify, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from core import config, i18n, regulation, schema
from core.clinic import attribute_index
from core.clinic.models import User
from core.db import db
from core.db import install as install_binary_lists
from core.delivery import lifecycle, metrics, queues, webhooks
from core.delivery.providers import DeclaredProvider
from core.errors import DomainError
from core.extensions import (
    babel,
    csrf,
    limiter,
    login_manager,
    migrate,
    select_locale,
    select_timezone,
)
from core.plugins import DEFAULT_PLUGINS, PluginError, PluginHost, enabled_plugins, hooks_for
from core.web import (
    account,
    api,
    api_docs,
    audit,
    auth,
    consent,
    console,
    fhir_api,
    headers,
    home,
    invitation,
    openapi,
    patient,
    patient_contact,
    patients,
    request_bodies,
    settings,
    signup,
    staff,
)
from core.web import messages as message_log_pages  # "messages" names a local below
from tenants import resolution, scoping

HERE = Path(__file__).resolve().parent


@dataclass
class RelaisState:
    """What the app holds for Relais, in ``app.extensions["relais"]``."""

    plugins: PluginHost
    channels: dict = field(default_factory=dict)  # provider name -> DeclaredProvider
    blueprint_owners: dict = field(default_factory=dict)  # blueprint name -> plugin name
    console_pages: list = field(default_factory=list)  # the plugins' ConsolePage, in order
    fernet: object = None
    redis: object = None
    budgets: object = None  # the clinics' sending budgets (core.delivery.limits)


def create_app(overrides: dict | None = None) -> Flask:
    """Build a Relais app: config, extensions, plugins, blueprints; fail early on bad plugins."""
    app = Flask("core", static_folder=None, subdomain_matching=True, instance_relative_config=True)
    config.load(app, overrides)
    # Every route lives on a clinic subdomain unless it says otherwise (the operator console).
    app.url_map.default_subdomain = "<tenant>"
    app.static_folder = "static"
    app.add_url_rule("/static/<path:filename>", "static", app.send_static_file)
    # The bare domain's own copy (the sign-up pages): a page loads its files from its host.
    app.add_url_rule("/static/<path:filename>", "main_static", app.send_static_file, subdomain="")

    db.init_app(app)
    install_binary_lists()
    migrate.init_app(app, db, directory=_migrations_dir())
    schema.init_app(app)  # the plugins' branches; a database not migrated answers 503
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    babel.init_app(
        app,
        locale_selector=select_locale,
        timezone_selector=select_timezone,
        default_translation_directories=_translations_dir(),
    )
    scoping.install(app.config["DB_APP_ROLE"])
    queues.install()
    lifecycle.install()
    attribute_index.install()

    state = RelaisState(plugins=PluginHost(trace=app.config["TRACE_HOOKS"]))
    app.extensions["relais"] = state
    state.plugins.load(app.config.get("PLUGINS") or DEFAULT_PLUGINS)
    resolution.init_app(app)
    request_bodies.init_app(app)  # the clinic known (its language): inputs bounded, then views
    _register_core_blueprints(app)
    _register_plugin_parts(app, state)
    _register_page_context(app)
    _register_template_helpers(app)
    _register_error_handlers(app)
    headers.init_app(app)
    openapi.init_app(app)
    return app


def long_lived(app: Flask) -> Flask:
    """``app``, its process made ready to serve for long (gunicorn's workers, ``relais
    worker``): call it once the app is built.

    What startup built (translations, phone metadata, the password checker's dictionaries,
    mappers: ~190,000 objects) lives as long as the process, so it is left out of the
    garbage collector's full collections (``gc.freeze``): each of them walked it all, about
    200 ms with Python's lock held, a pause of every request of the process every few
    seconds under load. The public holidays, which the first message judged would load,
    are loaded first, to be left out with them."""
    regulation.preload()
    gc.collect()
    gc.freeze()
    return app


def _register_core_blueprints(app: Flask) -> None:
    app.register_blueprint(auth.bp)
    app.register_blueprint(auth.bp, subdomain="operator", name="operator_auth")
    # The clinic's staff pages, one blueprint per area; each lets in staff only.
    for area in (home, account, patients, patient_contact, message_log_pages, staff, settings):
        app.register_blueprint(area.bp)
    app.register_blueprint(audit.bp)  # the audit log page, for admins
    app.register_blueprint(patient.bp)  # patients' own pages, with a session of their own
    app.register_blueprint(consent.bp)  # opt-out and confirmation links: no session needed
    app.register_blueprint(invitation.bp)  # a first admin's invitation link: no session yet
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    csrf.exempt(api.bp)  # bearer-key authentication only: no cookie, so no CSRF
    app.register_blueprint(api_docs.bp)  # the API's contract, readable without a key
    app.register_blueprint(fhir_api.bp)  # FHIR R4 Patient and the CapabilityStatement
    csrf.exempt(fhir_api.bp)
    app.register_blueprint(console.bp, subdomain="operator")
    app.register_blueprint(metrics.bp, subdomain="operator")  # bearer token, no session
    app.register_blueprint(signup.bp, subdomain="")  # the main domain: clinics sign up
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(webhooks.inbound_bp, subdomain="hooks")
    csrf.exempt(webhooks.bp)  # providers authenticate with their own signatures
    csrf.exempt(webhooks.inbound_bp)
    # Nor a limit per address: a provider posts every clinic's reports from a few addresses,
    # and a report refused is a report lost or late (a default limit an operator sets
    # would hold them back; the signature, checked first, is what keeps others out).
    limiter.exempt(webhooks.bp)
    limiter.exempt(webhooks.inbound_bp)


def _register_plugin_parts(app: Flask, state: RelaisState) -> None:
    for plugin, provider in state.plugins.collect("relais_register_channels"):
        if provider.name in state.channels:
            raise PluginError(f"two plugins declare the provider {provider.name!r}")
        state.channels[provider.name] = DeclaredProvider(plugin, provider)
    state.plugins.pm.hook.relais_register_commands(cli=app.cli)
    for plugin, blueprint in state.plugins.collect("relais_register_blueprints"):
        app.register_blueprint(blueprint)
        state.blueprint_owners[blueprint.name] = plugin

    console_blueprints = set()
    for _plugin, page in state.plugins.collect("relais_register_console_pages"):
        if page.blueprint.name not in app.blueprints:
            app.register_blueprint(page.blueprint, subdomain=resolution.OPERATOR)
        console_blueprints.add(page.blueprint.name)
        state.console_pages.append(page)

    @app.before_request
    def guard_plugin_routes():
        if request.blueprint in console_blueprints:  # the console's door: operators only
            return console.require_operator()
        owner = state.blueprint_owners.get(request.blueprint or "")
        if not owner:
            return None
        tenant = g.get("tenant")
        if tenant is None or owner not in enabled_plugins(tenant):
            abort(404)
        # Staff only, unless the plugin marks its blueprint public (patient-facing pages).
        public = getattr(app.blueprints[request.blueprint], "relais_public", False)
        if not public and not isinstance(current_user._get_current_object(), User):
            return login_manager.unauthorized()
        return None


def _register_page_context(app: Flask) -> None:
    @app.context_processor
    def page_context():
        tenant = g.get("tenant")
        if tenant is None:
            return {
                "tenant": None,
                "menu": [],
                "console_menu": app.extensions["relais"].console_pages,
                "settings_menu": [],
                "country_profile": None,
                "main_site": resolution.on_main_domain(),  # the sign-up pages
            }
        hooks = hooks_for(tenant)
        user = current_user._get_current_object()
        menu, settings_menu = [], []
        if isinstance(user, User):
            menu, settings_menu = _menu_sections(
                item
                for items in hooks.relais_menu_items(tenant=tenant, user=user)
                for item in items
                if not item.roles or user.role in item.roles
            )
        context = {}
        for variables in hooks.relais_template_variables(tenant=tenant):
            for name, value in (variables or {}).items():
                context.setdefault(name, value)
        context.update(
            tenant=tenant,
            menu=menu,
            settings_menu=settings_menu,
            country_profile=hooks.relais_country_profile(country_code=tenant.country_code),
        )
        return context


# The top bar holds at most 7 entries on one line at 1,440 px: Home, Patients, Messages,
# the Settings menu, and this many daily items of features (the rest go under Settings).
DAILY_PLUGIN_ITEMS = 3


def _menu_sections(items) -> tuple[list, list]:
    """The plugins' menu items: those of the top bar (daily work, by ``order``) and those
    under the Settings menu."""
    daily, settings = [], []
    for item in items:
        (settings if item.section == "settings" else daily).append(item)
    daily.sort(key=lambda item: item.order)
    return daily[:DAILY_PLUGIN_ITEMS], daily[DAILY_PLUGIN_ITEMS:] + settings


def _register_template_helpers(app: Flask) -> None:
    app.jinja_env.globals["get_locale"] = get_locale

    @app.template_global()
    def static_url(filename: str) -> str:
        """A static file's address on this page's own host (CSP allows 'self' only)."""
        endpoint = "main_static" if resolution.on_main_domain() else "static"
        return url_for(endpoint, filename=filename)

    app.jinja_env.globals["language_choices"] = lambda: i18n.language_names(app.config["LANGUAGES"])
    i18n.install(app)  # the filters date, datetime, time, number, percent, phone, phrases

    @app.template_filter()
    def language_name(code: str) -> str:
        return Locale.parse(code).get_display_name(get_locale()).capitalize()


def _register_error_handlers(app: Flask) -> None:
    def wants_json() -> bool:
        return request.path.startswith(("/api/", "/me/api/"))

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        db.session.rollback()  # a refused request changes nothing
        retry = getattr(exc, "retry_after", None)  # a limit: when to come back
        headers = {"Retry-After": str(retry)} if retry else {}
        if wants_json():
            return jsonify(exc.as_json()), exc.status, headers
        page = render_template("error.html", status=exc.status, message=exc.message)
        return page, exc.status, headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            code = (exc.name or "error").lower().replace(" ", "_")
            error = {"code": code, "message": exc.description}
            if exc.code in (400, 413, 415):  # what is wrong is the body
                error["field"] = "body"
            if exc.code == 413:  # the code the API always gave, whichever limit it is
                error.update(code="too_large", message=_http_message(exc))
            return jsonify({"error": error}), exc.code
        return render_template("error.html", status=exc.code, message=_http_message(exc)), exc.code


def _http_message(exc: HTTPException) -> str:
    """What a page says about an HTTP error, in the reader's language (Werkzeug's and
    extensions' descriptions are English only; the JSON API keeps them)."""
    messages = {
        400: _(
            "The form could not be sent: it may have been open too long. "
            "Reload the page and try again."
        ),
        403: _("You are not allowed to see this page."),
        405: _("This page cannot be used this way."),
        413: _("This request is too large."),
        429: _("Too many attempts. Wait a few minutes, then try again."),
        500: _("An unexpected error happened. Try again in a few minutes."),
    }
    return messages.get(exc.code, _("This request could not be completed."))


def _migrations_dir() -> str:
    return str(HERE.parent / "migrations")


def _translations_dir() -> str:
    return str(HERE / "translations")
