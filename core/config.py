"""Configuration: defaults for the embedded first run, overridden by ``RELAIS_*`` variables.

``RELAIS_DATABASE_URL``, ``RELAIS_REDIS_URL``, ``RELAIS_SECRET_KEY``,
``RELAIS_ENCRYPTION_KEYS`` and ``RELAIS_SERVER_NAME`` are the ones a deployment sets;
any other key below can be set the same way (``RELAIS_LOGIN_MAX_ATTEMPTS=10``).
"""

import json
import os
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app, has_request_context, request, url_for

from core.crypto import generate_key
from core.vocabulary import LANGUAGES


class Config:
    SERVER_NAME = "localhost:5000"  # clinics live at <slug>.SERVER_NAME
    # The scheme of the links Relais sends out (patients' links, providers' callbacks): set
    # RELAIS_PREFERRED_URL_SCHEME=https wherever TLS ends at a proxy in front of it.
    PREFERRED_URL_SCHEME = "http"
    DATABASE_URL = "sqlite:///relais.db"  # relative: under the instance folder
    REDIS_URL = None  # without it, delivery runs in-process (first run only)
    DB_APP_ROLE = "relais_app"  # PostgreSQL role each transaction runs as (RLS applies)
    SECRET_KEY = None
    ENCRYPTION_KEYS = None
    LANGUAGES = LANGUAGES  # core.vocabulary: fr, de, it, nl, en
    BABEL_DEFAULT_LOCALE = "en"
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_IDLE_MINUTES = 30  # a login session unused this long ends (staff and patients)
    SESSION_MAX_HOURS = 8  # and any session ends this long after its login
    LOGIN_MAX_ATTEMPTS = 5  # failed passwords or codes before the account locks
    LOGIN_LOCKOUT_MINUTES = 15
    INVITATION_HOURS = 72  # how long a first admin's invitation link stays valid
    LOGIN_RATE_LIMIT = "20 per minute"  # per client address, on every login form
    SIGNUP_RATE_LIMIT = "10 per hour"  # clinic sign-ups sent per client address
    SIGNUP_PENDING_LIMIT = 2  # sign-ups not yet activated per e-mail address and per phone
    RATELIMIT_STORAGE_URI = None  # defaults to REDIS_URL, else process memory
    WTF_CSRF_TIME_LIMIT = None  # tokens live as long as the session
    METRICS_TOKEN = None  # bearer token Prometheus sends to operator.<domain>/metrics
    MAX_CONTENT_LENGTH = 1 << 20  # bytes of a request's body (a view may allow more)
    # How long a process keeps the configuration it read (plugins enabled, routes, plugin
    # settings) before reading it again; a change saved in the process is seen at once.
    CONFIG_SECONDS = 5
    # A job of a suspended clinic (a campaign's, a plugin's) waits this long, then looks again.
    SUSPENDED_RECHECK_SECONDS = 60
    # Host names answered without DNS where Relais connects to a clinic's own address (status
    # callbacks), as curl's --resolve: {"name": ["address", ...], "*": [...] for any other
    # name}; an empty list means "not found". Unset: DNS answers (the tests pin every name).
    RESOLVE = None
    # Provider health (core/delivery/health.py): once every HEALTH_EVERY_SECONDS, each
    # provider's messages of the last HEALTH_WINDOW_SECONDS are measured; at HEALTH_THRESHOLD
    # or more of at least HEALTH_MIN_SAMPLE slow (a receipt later than HEALTH_SLOW_SECONDS)
    # or failed, it loses its traffic. Workers read the factors every HEALTH_REMEMBER_SECONDS.
    HEALTH_WINDOW_SECONDS = 15 * 60
    HEALTH_SLOW_SECONDS = 5 * 60
    HEALTH_THRESHOLD = 0.15
    HEALTH_MIN_SAMPLE = 20
    HEALTH_EVERY_SECONDS = 60
    HEALTH_REMEMBER_SECONDS = 30
    TRACE_HOOKS = False  # log every hook call to "relais.hooks" (INFO), arguments redacted


def load(app: Flask, overrides: dict | None) -> None:
    app.config.from_object(Config)
    app.config.from_prefixed_env("RELAIS")
    app.config.update(overrides or {})
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    # The cookie lives as long as the longest session; the server decides before that.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["SESSION_MAX_HOURS"])
    # Connections are renewed every 30 minutes: PostgreSQL keeps each connection's plans of
    # foreign-key checks, made with the statistics of their first use (a new deployment's
    # empty tables), and a plan that scans a clinic's index grows slower as tables grow.
    # No pool_pre_ping: a connection the server closed (a restart) is replaced at checkout
    # without a round trip (core.db's _still_open).
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_recycle": 1800,
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    if not app.config["RATELIMIT_STORAGE_URI"]:
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"] or "memory://"
    if not (app.config["SECRET_KEY"] and app.config["ENCRYPTION_KEYS"]):
        _load_instance_keys(app)


def _load_instance_keys(app: Flask) -> None:
    """First run without configured keys: generate them once, kept in the instance folder."""
    path = Path(app.instance_path) / "keys.json"
    if path.exists():
        keys = json.loads(path.read_text())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = {"SECRET_KEY": os.urandom(32).hex(), "ENCRYPTION_KEYS": generate_key()}
        path.touch(mode=0o600)
        path.write_text(json.dumps(keys))
    for name, value in keys.items():
        app.config[name] = app.config[name] or value


def external_url(endpoint: str, **values) -> str:
    """An absolute URL for outside (a link in a message, a provider's callback): https when
    the deployment says so (``PREFERRED_URL_SCHEME``), whether it is built in a worker or in
    a request that reached the app over plain http from its TLS proxy, and in any request
    that came over https; http otherwise (a first run on a laptop)."""
    secure = has_request_context() and request.is_secure
    scheme = "https" if secure else current_app.config["PREFERRED_URL_SCHEME"]
    return url_for(endpoint, _external=True, _scheme=scheme, **values)
