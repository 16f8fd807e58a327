"""Background jobs on RQ: queues by priority, each job run inside its tenant's scope.

A job takes ids, not objects: ``enqueue(tenant, "pkg.module:function", *ids)``. The worker
re-reads state from the database, so a job is safe to run twice.
"""

import uuid

from flask import current_app
from redis import Redis
from rq import Queue
from werkzeug.utils import import_string

from core.db import db
from core.vocabulary import QUEUES
from tenants.scoping import tenant_scope


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
            result = function(*args)
            db.session.commit()
            return result
        finally:
            db.session.remove()
