"""What every request may carry, checked once for every route before its view runs.

- A body of at most the ``MAX_CONTENT_LENGTH`` setting's bytes (413), unless the view
  allows more with :func:`body_limit`.
- JSON nested at most :data:`MAX_JSON_DEPTH` levels deep (400 on ``body``): Python's parser
  recurses, and a body nested 50,000 deep would end in a RecursionError.
- No NUL character nor lone surrogate in a path's part, a query argument, a form field or
  any JSON text (422 naming the field): PostgreSQL's text refuses NUL, and a lone
  surrogate has no UTF-8.

Routes that read their body raw (providers' webhooks) get the same checks: a JSON body is
parsed here first, whoever reads it.
"""

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _

from core import validation as check
from core.errors import DomainError

MAX_JSON_DEPTH = 32
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def body_limit(size: int) -> Callable:
    """Let a view read a body of up to ``size`` bytes (a batch of messages)."""

    def mark(view: Callable) -> Callable:
        view.max_content_length = size
        return view

    return mark


class BoundedJSONProvider(DefaultJSONProvider):
    """The app's JSON, which requests parse with: Flask's, bounded in depth and characters."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            value = None
            _too_deep()
        _check_json(value, "", 0)
        return value


def _too_deep() -> None:
    raise DomainError(
        _("The body is nested too deeply: at most %(n)d levels.", n=MAX_JSON_DEPTH), "body"
    )


def _check_json(value: Any, where: str, depth: int) -> None:
    if isinstance(value, str):
        check.storable(value, where or "body")
    elif isinstance(value, dict | list):
        if depth >= MAX_JSON_DEPTH:
            _too_deep()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, inner in items:
            if isinstance(key, str):
                check.storable(key, where or "body")
                name = f"{where}.{key}" if where else key
            else:
                name = f"{where or 'body'}[{key}]"
            _check_json(inner, name, depth + 1)


def check_input() -> None:
    """Refuse what no route can use (used as the app's first ``before_request``)."""
    view = current_app.view_functions.get(request.endpoint or "")
    allowed = getattr(view, "max_content_length", None)
    if allowed:
        request.max_content_length = allowed
    for key, value in (request.view_args or {}).items():
        if isinstance(value, str):
            check.storable(value, key)
    for key, value in request.args.items(multi=True):
        check.storable(key, "query")
        check.storable(value, key)
    if request.mimetype in FORM_TYPES:
        request.get_data()  # kept: a view may still read the raw body (a signature over it)
        for key, value in request.form.items(multi=True):
            check.storable(key, "form")
            check.storable(value, key)
    elif request.is_json:
        request.get_json(silent=True)  # bounded and checked; a malformed one is the view's


def init_app(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
    app.before_request(check_input)
