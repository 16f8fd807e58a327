"""What operators configure (plugins enabled, routes, settings, suspended clinics) and who
calls (the clinic of a host, the API key of a bearer token), remembered per process.

Every request and job reads the same few rows (the plugins enabled for the clinic and its
country, the SMS routes, a plugin's settings): 8 of the 18 statements of a
``POST /api/v1/messages`` were these, identical every time, and 3 more were the clinic and
the key (then setting the clinic's scope again). Each process now keeps what it
read for ``CONFIG_SECONDS`` (5 by default; 0 reads them in every request and job again):

- a change saved in this process is seen at once: writing one of these tables (through the
  ORM, as the console and the CLI do) forgets everything remembered, and again when that
  transaction ends (a rolled back change is not remembered);
- the transaction that writes them (flushed or not yet) reads them from the database until
  it ends (what it wrote, not what others see);
- other processes (the other web workers, the delivery workers) see it within
  ``CONFIG_SECONDS``: a key revoked, a clinic suspended, in one web process stops working
  in the others within those seconds.

Within one request or job the callers keep their own copy too (``flask.g``), so a request
sees one configuration from start to end.
"""

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.db import db

_KEY = "relais_configuration"  # in app.extensions
_WRITTEN = "relais_configuration_written"  # in session.info: this transaction wrote some
_TABLES = frozenset(
    {
        "country_plugins",
        "tenant_disabled_plugins",
        "provider_routes",
        "plugin_settings",
        "deployment_settings",
        "clinic_settings",
        "tenants",  # the clinic of a host, which are suspended (tenants.resolution, jobs)
        "api_keys",  # a bearer token's key (core.clinic.apikeys.key_for_token)
    }
)


class _Remembered:
    """An app's remembered configuration, shared by its threads (in ``app.extensions``)."""

    __slots__ = ("values", "__weakref__")

    def __init__(self) -> None:
        self.values: dict[Any, tuple[float, Any]] = {}  # key -> (until when, value)


_every: "weakref.WeakSet[_Remembered]" = weakref.WeakSet()  # so that forget() reaches all
_lock = threading.Lock()
clock = time.monotonic  # seconds; tests move it on


def remembered(key: Any, load: Callable[[], Any], *, misses: bool = True) -> Any:
    """The value of ``key`` read by ``load`` (from the configuration tables), remembered by
    this process for ``CONFIG_SECONDS``. Callers do not change what they get back.

    :param misses: whether to remember None too; False where keys come from outside (a
        host's subdomain, a bearer token), so that made-up ones cannot fill the memory."""
    seconds = current_app.config.get("CONFIG_SECONDS", 0)
    if not seconds or _writing(db.session()):
        return load()
    remembered = current_app.extensions.get(_KEY)
    if remembered is None:
        with _lock:
            remembered = current_app.extensions.setdefault(_KEY, _Remembered())
            _every.add(remembered)
    now = clock()
    found = remembered.values.get(key)
    if found is not None and found[0] > now:
        return found[1]
    value = load()
    if value is not None or misses:
        remembered.values[key] = (now + seconds, value)
    return value


def forget() -> None:
    """Forget everything remembered, by every app of the process: the next reads go to the
    database."""
    with _lock:
        for remembered in list(_every):
            remembered.values.clear()


def _writing(session: Session) -> bool:
    """Whether this transaction wrote configuration, or is about to (not flushed yet)."""
    return bool(session.info.get(_WRITTEN)) or _configuration(
        (*session.new, *session.dirty, *session.deleted)
    )


def _configuration(objects) -> bool:
    return any(getattr(type(o), "__tablename__", None) in _TABLES for o in objects)


def _written(session: Session) -> None:
    session.info[_WRITTEN] = True
    forget()


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    if _configuration((*session.new, *session.dirty, *session.deleted)):
        _written(session)


@event.listens_for(Session, "do_orm_execute")
def _bulk_write(state) -> None:
    """An UPDATE or DELETE statement on one of the tables (not a unit of work), unless it
    says it changes nothing remembered (``execution_options(remembered=False)``)."""
    if not state.execution_options.get("remembered", True):
        return
    if (state.is_update or state.is_delete) and getattr(
        getattr(state.statement, "table", None), "name", None
    ) in _TABLES:
        _written(state.session)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction) -> None:
    if transaction.parent is None and session.info.pop(_WRITTEN, None):
        forget()  # what was read meanwhile by others may predate the commit
