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


def enqueue_job(tenant, target: str, *args, queue_name: str = "transactional"):
    """Run ``target`` (``"package.module:function"``, called with ``args``: ids and plain
    values, never objects) in a worker, in the scope of ``tenant`` (a clinic or its id),
    committing after it returns, rolling back if it raises.

    The job may run twice (a worker lost, a sweep that queued it again): make it safe to.
    Without Redis (a first run), it runs at once in this process, in a context of its own.
    ``queue_name`` is one of :data:`core.vocabulary.QUEUES` (the worker listens to each).
    """
    tenant_id = str(getattr(tenant, "id", tenant))
    if not current_app.config["REDIS_URL"]:
        return run(tenant_id, target, *args)
    return queue(queue_name).enqueue(run, tenant_id, target, *args, result_ttl=0)
