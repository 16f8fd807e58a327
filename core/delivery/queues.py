"""Pushing due message ids to RQ, after commit, in batches: one job per batch, not per message.

Redis holds only ids of messages the database already has as due; the sweeper pushes again
whatever Redis lost or never got.
"""

import uuid
from collections import defaultdict

from flask import current_app
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.db import db
from core.delivery import jobs
from core.vocabulary import PURPOSES

QUEUE_OF_PURPOSE = {p.name: p.queue for p in PURPOSES.values()}
# Message ids per job. A job has a fixed cost (RQ's some 65 Redis commands and 28 round
# trips, the clinic's scope, a new session): many messages a job make it small per
# message. A code does not wait behind a long job: the job sends a part
# (``dispatch.PART``) at a time and hands its rest back when the ``otp`` queue has work.
BATCH = 1000
DELIVER = jobs.DELIVER
_KEY = "relais_due"


def enqueue_after_commit(message) -> None:
    """Push the message's id once the current transaction commits (never before: a worker
    must find the row)."""
    db.session.info.setdefault(_KEY, []).append(
        (message.tenant_id, QUEUE_OF_PURPOSE[message.purpose], message.id)
    )


def push(due: list[tuple[uuid.UUID, str, uuid.UUID]]) -> int:
    """Enqueue (tenant, queue, message id) triples as batch jobs in one Redis pipeline.

    Returns how many jobs were pushed; 0 without Redis (the in-process deliverer or the
    sweeper takes them from the database).
    """
    if not due or not current_app.config["REDIS_URL"]:
        return 0
    groups: dict[tuple[uuid.UUID, str], list[str]] = defaultdict(list)
    for tenant_id, queue_name, message_id in due:
        groups[(tenant_id, queue_name)].append(str(message_id))
    connection = jobs.redis()
    jobs_by_queue: dict[str, list] = defaultdict(list)
    for (tenant_id, queue_name), ids in groups.items():
        for start in range(0, len(ids), BATCH):
            jobs_by_queue[queue_name].append(
                Queue.prepare_data(
                    jobs.run,
                    args=(str(tenant_id), DELIVER, ids[start : start + BATCH]),
                    result_ttl=0,
                )
            )
    pushed = 0
    try:
        with connection.pipeline() as pipe:
            for queue_name, data in jobs_by_queue.items():
                jobs.queue(queue_name).enqueue_many(data, pipeline=pipe)
                pushed += len(data)
            pipe.execute()
    except RedisError:
        current_app.logger.warning("Redis unavailable: the sweeper will queue %d jobs", pushed)
        return 0
    return pushed


def _after_commit(session: Session) -> None:
    due = session.info.pop(_KEY, None)
    if due:
        push(due)


def _after_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(_KEY, None)


def install(session_class=Session) -> None:
    """Register the after-commit push; called once by the app factory."""
    if not event.contains(session_class, "after_commit", _after_commit):
        event.listen(session_class, "after_commit", _after_commit)
        event.listen(session_class, "after_soft_rollback", _after_rollback)
