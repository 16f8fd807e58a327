"""Flask extensions, created unbound and bound by the app factory with ``init_app``."""

from flask import current_app, g, has_request_context, request, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
migrate = Migrate()
limiter = Limiter(key_func=get_remote_address)


@limiter.request_filter
def _api_without_limits() -> bool:
    """Whether Flask-Limiter may pass this request by: one of the JSON API's (blueprint
    ``api``) while the operator set no limit for every route, since no API route has one of
    its own (the clinic's limits apply). Its search for limits that are not there cost a
    tenth of an API request's time."""
    config = current_app.config
    return request.blueprint == "api" and not (
        config.get("RATELIMIT_DEFAULT") or config.get("RATELIMIT_APPLICATION")
    )


def select_locale() -> str:
    """The reader's choice (a patient's is their language), else the clinic's language (its
    own choice, else its country's), else the browser's."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    tenant = g.get("tenant")
    if tenant is not None and tenant.default_language in languages:
        return tenant.default_language
    best = request.accept_languages.best_match(languages)
    return best or current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str | None:
    """Times are shown in the clinic's time zone (stored in UTC)."""
    tenant = g.get("tenant") if has_request_context() else None
    return tenant.timezone if tenant is not None else None
