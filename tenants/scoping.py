"""Which tenant the current code acts for, and the filters that follow from it.

Every request, job and CLI command runs in exactly one scope: one tenant, or the system
(operator console, sweepers, provisioning). Code that touches tenant-owned rows outside any
scope fails loudly: no scope means no data, never all data.

Two walls enforce the scope:
- the ORM adds ``tenant_id = :current`` to every SELECT of a :class:`TenantOwned` model
  (``with_loader_criteria``) and stamps new rows with the current tenant;
- on PostgreSQL, each transaction runs as the unprivileged ``relais_app`` role with
  ``relais.tenant_id`` set, and row-level security policies apply the same filter.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria

from core.db import db

SYSTEM = "*"  # the scope of the operator console, provisioning and sweepers
_app_role = {"name": "relais_app"}  # set by install(); empty when already unprivileged

_scope: ContextVar[uuid.UUID | str | None] = ContextVar("relais_scope", default=None)


class ScopeError(RuntimeError):
    """Tenant-owned data was touched outside any tenant or system scope."""


class TenantOwned:
    """Mixin for every tenant-owned table: ``tenant_id`` leads the primary key."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True, sort_order=-1
    )


def current_scope() -> uuid.UUID | str | None:
    return _scope.get()


def current_tenant_id() -> uuid.UUID:
    """The tenant the code acts for; raises outside a tenant scope."""
    scope = _scope.get()
    if not isinstance(scope, uuid.UUID):
        raise ScopeError("no tenant in scope")
    return scope


@contextmanager
def tenant_scope(tenant_id: uuid.UUID) -> Iterator[None]:
    """Act for one tenant inside the block (a job, a CLI command, a test)."""
    with _scoped(tenant_id):
        yield


@contextmanager
def system_scope() -> Iterator[None]:
    """Act for the platform inside the block: every tenant's rows are visible."""
    with _scoped(SYSTEM):
        yield


@contextmanager
def _scoped(value) -> Iterator[None]:
    token = _scope.set(value)
    _apply_to_open_transaction(db.session)
    try:
        yield
    finally:
        _scope.reset(token)
        _apply_to_open_transaction(db.session)


def enter(value) -> None:
    """Set the scope for the rest of the current request (see tenants.resolution)."""
    _scope.set(value)
    _apply_to_open_transaction(db.session)


def leave() -> None:
    """Forget the request's scope (threads of a server are reused across requests)."""
    _scope.set(None)


def _apply_to_open_transaction(scoped_session) -> None:
    try:
        session = scoped_session()
    except RuntimeError:  # outside an application context: nothing open
        return
    if session.in_transaction():
        _set_local(session.connection())


def _set_local(connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    scope = _scope.get()
    connection.execute(
        sa.text("SELECT set_config('relais.tenant_id', :scope, true)"),
        {"scope": "" if scope is None else str(scope)},
    )


def install(app_role: str, session_class: type[Session] = Session) -> None:
    """Register the ORM events that enforce the scope; called once by the app factory.

    :param app_role: the PostgreSQL role each transaction switches to ("" to stay as is).
    """
    _app_role["name"] = app_role
    if event.contains(session_class, "do_orm_execute", _filter_selects):
        return
    event.listen(session_class, "do_orm_execute", _filter_selects)
    event.listen(session_class, "transient_to_pending", _stamp_on_add)
    event.listen(session_class, "before_flush", _check_new_rows)
    event.listen(session_class, "after_begin", _begin_as_app_role)


def _filter_selects(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("skip_tenant_filter"):
        return
    mappers = state.all_mappers
    scope = _scope.get()
    if not mappers:
        # A Core SELECT over an ORM subquery (the ``count()`` of a query) names no mapper at
        # its top: in a tenant's scope the criteria still reach the tables inside it.
        if isinstance(scope, uuid.UUID):
            state.statement = state.statement.options(_criteria(scope))
        return
    if not any(isinstance(m.class_, type) and issubclass(m.class_, TenantOwned) for m in mappers):
        return
    if scope is None:
        raise ScopeError("tenant-owned rows queried outside any scope")
    if scope == SYSTEM:
        return
    state.statement = state.statement.options(_criteria(scope))


_CRITERIA: dict[uuid.UUID, object] = {}  # tenant id -> its filter, built once per process
_CRITERIA_KEPT = 10_000  # tenants whose filter is kept (then all are built again)


def _criteria(scope: uuid.UUID):
    # Built once per tenant, not per query: building it (the lambda analysed again) was a
    # tenth of the cost of each ORM query of a request.
    criteria = _CRITERIA.get(scope)
    if criteria is None:
        if len(_CRITERIA) >= _CRITERIA_KEPT:
            _CRITERIA.clear()
        criteria = _CRITERIA[scope] = with_loader_criteria(
            TenantOwned, lambda cls: cls.tenant_id == scope, include_aliases=True
        )
    return criteria


def _stamp_on_add(session: Session, obj) -> None:
    """A row added in a tenant's scope belongs to that tenant."""
    scope = _scope.get()
    if isinstance(obj, TenantOwned) and obj.tenant_id is None and isinstance(scope, uuid.UUID):
        obj.tenant_id = scope


def _check_new_rows(session: Session, flush_context, instances) -> None:
    scope = _scope.get()
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        if obj.tenant_id is None:
            raise ScopeError(f"{type(obj).__name__} added outside a tenant scope")
        if isinstance(scope, uuid.UUID) and obj.tenant_id != scope:
            raise ScopeError(f"{type(obj).__name__} written for another tenant")


def _begin_as_app_role(session: Session, transaction, connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    # Superusers and table owners bypass row-level security: drop to the app role for
    # the length of the transaction, so the policies apply even on a trust-auth setup.
    # One statement for both (``set_config('role', ...)`` is ``SET LOCAL ROLE``): every
    # transaction begins with it, a round trip fewer for each request and job.
    if _app_role["name"]:
        scope = _scope.get()
        connection.execute(
            _BEGIN_AS_APP_ROLE,
            {"role": _app_role["name"], "scope": "" if scope is None else str(scope)},
        )
        return
    _set_local(connection)


# Made once (``sa.text`` parses its text for parameters each time it is made).
_BEGIN_AS_APP_ROLE = sa.text(
    "SELECT set_config('role', :role, true), set_config('relais.tenant_id', :scope, true)"
)
