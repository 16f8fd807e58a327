"""The delivery worker: RQ's SimpleWorker, made to outlive Redis restarts.

RQ retries a lost connection only while it waits for a job; one lost anywhere else (the
job's bookkeeping before and after it runs, the heartbeat after it, the suspension check,
the registries' cleaning) ends its work loop, and the process with it. Here each of those
steps waits for Redis instead, with a doubling backoff, logging each wait, and goes on.

Nothing is lost meanwhile: messages live in the database, Redis only holds their ids. A job
whose bookkeeping broke with Redis either ran (its messages are recorded) or did not (they
are still due, and the sweeper queues them again), so it is not retried here.

RQ's scheduler (jobs queued for a later time: a campaign's paced chunks, plugins'
``run_later(at=...)``) runs in a thread of the worker, not in the process RQ forks for it: a
fork copies the worker's open database connections, the sweeper's in the middle of a
transaction included, into a process that outlives a killed worker and keeps them, and the
transaction's locks, for ever (a TRUNCATE, a migration, a VACUUM then wait on them).

A lost PostgreSQL connection needs nothing of the worker: the job fails, the engine's pool
is invalidated and pre-pings its connections (``SQLALCHEMY_ENGINE_OPTIONS``), the next job
gets a fresh one, and the sweeper reclaims what the failed job had claimed when its lease
ends.
"""

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import redis.exceptions
from rq import SimpleWorker, worker_registration
from rq.scheduler import RQScheduler

from core.delivery import jobs

OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
FIRST_WAIT = 0.5  # seconds before the first try again; doubled each time
LONGEST_WAIT = 10.0  # a worker back at most this long after Redis is


class Worker(SimpleWorker):
    """A SimpleWorker (jobs run in this process, no fork) that waits for Redis when it is
    gone and goes on when it is back, and tells the job it runs which of its queues come
    first (:func:`jobs.work_ahead`: a long delivery job hands its rest back when a code
    waits)."""

    # RQ's own backoff while waiting for a job: capped as ours, not at a minute.
    max_connection_wait_time = LONGEST_WAIT

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        if pipeline is not None:  # queued on the caller's pipeline: no call to Redis here
            return super().heartbeat(timeout, pipeline)
        return self._through_outages(super().heartbeat, timeout)

    def check_for_suspension(self, burst: bool) -> None:
        return self._through_outages(super().check_for_suspension, burst)

    def run_maintenance_tasks(self) -> None:
        return self._through_outages(super().run_maintenance_tasks)

    def execute_job(self, job, queue) -> None:
        names = self.queue_names()
        ahead = self.queues[: names.index(queue.name)] if queue.name in names else ()
        try:
            with jobs.queues_ahead(tuple(q.key for q in ahead)):
                super().execute_job(job, queue)
        except OUTAGE as exc:
            self.log.warning(
                "Worker %s: Redis lost during job %s (%s); its messages are in the database, "
                "the sweeper queues again those it did not send",
                self.name,
                job.id,
                _describe(exc),
            )
            self._wait_for_redis()

    def _start_scheduler(self, burst: bool = False, *args, **kwargs) -> None:
        if burst:  # RQ's own: queue what is due once, in this process
            return super()._start_scheduler(burst, *args, **kwargs)
        self.scheduler = Scheduler(
            self.queues, connection=self.connection, serializer=self.serializer
        )
        self.scheduler.acquire_locks(auto_start=True)

    def stop_scheduler(self) -> None:
        self.scheduler.request_stop()
        if self.scheduler._process:
            self.scheduler._process.join(timeout=self.scheduler.interval + 1)

    def teardown(self) -> None:
        try:
            super().teardown()
        except OUTAGE as exc:  # stopping while Redis is gone: nothing to unregister from
            self.log.warning(
                "Worker %s: stopped with Redis unavailable (%s)", self.name, _describe(exc)
            )

    def _through_outages(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)``, tried again after each wait while Redis is unavailable."""
        wait = FIRST_WAIT
        while True:
            try:
                result = call(*args)
            except OUTAGE as exc:
                self._log_wait(exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT)
                continue
            if wait > FIRST_WAIT:  # Redis is back, maybe empty (restarted without its data)
                self._register_again()
            return result

    def _wait_for_redis(self) -> None:
        """Return once Redis answers again (and this worker is registered in it)."""
        self._through_outages(self.connection.ping)
        self._register_again()

    def _register_again(self) -> None:
        """List this worker again in a Redis that lost it (``rq info``, the dashboards)."""
        try:
            if self.connection.hexists(self.key, "birth"):
                return
            with self.connection.pipeline() as pipeline:
                pipeline.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, pipeline)
                pipeline.expire(self.key, self.worker_ttl + 60)
                pipeline.execute()
        except OUTAGE as exc:  # gone again: the next step waits for it
            self._log_wait(exc, None)
            return
        self.log.info("Worker %s: Redis is back; registered again", self.name)

    def _log_wait(self, exc: Exception, wait: float | None) -> None:
        then = f"trying again in {wait:.1f} s" if wait is not None else "will try again"
        self.log.warning("Worker %s: Redis unavailable (%s); %s", self.name, _describe(exc), then)


class Scheduler(RQScheduler):
    """RQ's scheduler, its loop in a thread of the worker instead of a forked process (see
    the module's note). The worker's maintenance starts it again if it stopped (RQ's own
    check of ``_process.is_alive()``); a Redis outage pauses it."""

    def start(self) -> threading.Thread:
        self._status = self.Status.STARTED
        self._stop_requested = False
        self._process = threading.Thread(target=self._loop, name="rq-scheduler", daemon=True)
        self._process.start()
        return self._process

    def _loop(self) -> None:
        self.register_birth()
        while not self._stop_requested:
            try:
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
            except OUTAGE as exc:
                self.log.warning("Scheduler: Redis unavailable (%s)", _describe(exc))
            time.sleep(self.interval)
        with contextlib.suppress(*OUTAGE):  # Redis gone: its locks expire on their own
            self.stop()


def _describe(exc: Exception) -> str:
    """The error's kind and text: redis-py names the host and port, never the password."""
    return f"{type(exc).__name__}: {exc}"
