"""Background jobs on RQ: queues by priority, each job run inside its tenant's scope.

A job takes ids, not objects: ``enqueue(tenant, "pkg.module:function", *ids)``. The worker
re-reads state from the database, so a job is safe to run twice.

A job of a suspended clinic does not run: it is put back on its queue for
``SUSPENDED_RECHECK_SECONDS`` later, and runs once the operator reactivates the clinic. The
delivery job holds the clinic's messages itself (they stay due in the database).
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, get_current_job
from werkzeug.utils import import_string

from core import configured
from core.db import db
from core.vocabulary import QUEUES
from tenants.models import Tenant
from tenants.scoping import current_tenant_id, tenant_scope

DELIVER = "core.delivery.dispatch:deliver"  # holds a suspended clinic's messages itself
# The Redis keys of the queues the running job's worker takes before the job's own (set by
# the worker around each job): a long job hands its rest back when one of them has work.
_ahead: ContextVar[tuple[str, ...]] = ContextVar("relais_queues_ahead", default=())


def redis() -> Redis:
    url = current_app.config["REDIS_URL"]
    if not url:
        raise RuntimeError("RELAIS_REDIS_URL is not set: queued work needs Redis")
    state = current_app.extensions["relais"]
    if state.redis is None:
        state.redis = Redis.from_url(url)
    return state.redis


def queue(name: str) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; the worker listens to {QUEUES}")
    return Queue(name, connection=redis())


def enqueue(tenant, target: str, *args, queue_name: str = "transactional"):
    """Queue ``target`` (``"module:function"``) to run for ``tenant`` with ``args``."""
    return queue(queue_name).enqueue(run, str(tenant.id), target, *args)


def run_later(tenant, target: str, *args, queue_name: str = "bulk", at=None) -> None:
    """Run ``target`` (``"module:function"``, called with ``args``: ids and plain values,
    never objects) for ``tenant`` (a clinic or its id) in a worker, on
    ``queue_name``, at ``at`` (an aware datetime; the worker's scheduler moves it to its
    queue then) or as soon as a worker is free. Without Redis (a first run), runs it here
    and now, in the tenant's scope: the target commits its own work.

    The job must re-read its state and be safe to run twice (Redis may lose it; RQ may run
    it again).
    """
    tenant_id = getattr(tenant, "id", tenant)  # a clinic, or its id
    if not current_app.config["REDIS_URL"]:
        function = import_string(target.replace(":", "."))
        with tenant_scope(uuid.UUID(str(tenant_id))):
            function(*args)
            db.session.commit()
        return
    if at is not None:
        queue(queue_name).enqueue_at(at, run, str(tenant_id), target, *args, job_timeout=600)
    else:
        queue(queue_name).enqueue(run, str(tenant_id), target, *args, job_timeout=600)


def run(tenant_id: str, target: str, *args):
    """The body of every Relais job: enter the tenant's scope, call, commit or roll back."""
    function = import_string(target.replace(":", "."))
    # A fresh application context per job: nothing cached in ``g`` outlives the job.
    with current_app.app_context(), tenant_scope(uuid.UUID(tenant_id)):
        try:
            if target != DELIVER and is_suspended(uuid.UUID(tenant_id)):
                _hold(tenant_id, target, args)
                return None
            result = function(*args)
            db.session.commit()
            return result
        finally:
            db.session.remove()


def is_suspended(tenant_id: uuid.UUID) -> bool:
    """Whether the operator suspended the clinic: read from the configuration the process
    remembers (:mod:`core.configured`), so a job costs no query most of the time; another
    process's suspension is seen within ``CONFIG_SECONDS``."""
    return tenant_id in configured.remembered(("suspended",), _suspended_ids)


def _suspended_ids() -> frozenset[uuid.UUID]:
    return frozenset(
        db.session.scalars(sa.select(Tenant.id).where(Tenant.suspended_at.is_not(None)))
    )


def _hold(tenant_id: str, target: str, args: tuple) -> None:
    """Put a suspended clinic's job back on its queue, to look again later."""
    job = get_current_job()
    name = job.origin if job is not None and job.origin in QUEUES else "bulk"
    later = timedelta(seconds=current_app.config["SUSPENDED_RECHECK_SECONDS"])
    queue(name).enqueue_in(later, run, tenant_id, target, *args, job_timeout=600)


@contextmanager
def queues_ahead(keys: tuple[str, ...]) -> Iterator[None]:
    """Inside the block (a job), :func:`work_ahead` looks at these queues' Redis keys."""
    token = _ahead.set(keys)
    try:
        yield
    finally:
        _ahead.reset(token)


def work_ahead() -> bool:
    """Whether a queue the worker takes before the running job's has a job waiting (a code
    behind a campaign's job): one round trip to Redis; False outside a worker, or when Redis
    does not answer (the job then goes on)."""
    keys = _ahead.get()
    if not keys:
        return False
    try:
        with redis().pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.llen(key)
            return any(pipe.execute())
    except RedisError:
        return False


def hand_back(target: str, *args) -> bool:
    """Queue the running job's rest (``target`` called with ``args``, in the current
    tenant's scope) at the front of the job's queue, to run after the work ahead of it.

    Returns False when it could not (no job running, Redis unavailable): the caller then
    does the rest itself.
    """
    job = get_current_job()
    if job is None or job.origin not in QUEUES:
        return False
    tenant_id = str(current_tenant_id())
    try:
        queue(job.origin).enqueue(run, tenant_id, target, *args, result_ttl=0, at_front=True)
    except RedisError:
        return False
    return True
