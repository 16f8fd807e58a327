"""Group commit: the writes of a process's concurrent requests, done together.

Why. A request that writes one row pays for a whole transaction: a connection taken, the
clinic's scope set, its reads, its statements, the commit, the queue push after it. When
many such requests arrive at once (a provider reporting each message in a call of its own, a
practice software posting its messages one by one), a process does better to hand their
work to one thread that does the work waiting, of one group at a time, in one transaction:
the requests that arrive while a transaction commits go together in the next. Nothing is
answered before its work is committed, and each group (a clinic's, with whatever else its
key holds) is a transaction of its own, in that clinic's scope. A group that fails is done
again one request at a time, so that one request's error is its own.
"""

import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from core.db import db

MOST = 200  # requests whose work goes in one transaction, at most


@dataclass(eq=False)
class _Call:
    key: Hashable
    item: Any
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Work of concurrent requests done by one thread per process, grouped by key.

    ``work(key, items)`` runs in the thread, in an app context of its own, and returns one
    result per item, in order, once it committed what it wrote; what it raises fails the
    group, which is then worked again one item at a time. ``gather``: how long the first
    call of a transaction waits for others to join it while a burst is on (the thread's last
    round took more than one call): seconds of its answer traded for fewer, larger
    transactions. A call that comes alone after a quiet moment does not wait.
    """

    def __init__(
        self, name: str, work: Callable[[Hashable, list], list], gather: float = 0.0
    ) -> None:
        self.name, self.work, self.gather = name, work, gather
        self._starting = threading.Lock()

    def __call__(self, key: Hashable, item: Any, timeout: float | None = None) -> Any:
        """``work``'s result for ``item``, done with the items of the calls that ``key``
        groups with it; returns once committed. The caller's session is closed first (what
        it read stays readable): commit what it wrote before.

        :raises TimeoutError: when no commit came within ``timeout`` seconds (the work may
            still be done after).
        :raises Exception: what working ``item`` alone raised.
        """
        call = _Call(key, item)
        # Its connection back to the pool before it waits: requests that held theirs while
        # the thread waited for one would all wait for ever once they filled the pool (more
        # threads than connections, a new process reading its clinics and keys).
        db.session.close()
        self._thread(current_app._get_current_object()).calls.put(call)
        if not call.done.wait(timeout):
            raise TimeoutError(f"{self.name}: not committed within {timeout:g} s")
        if call.error is not None:
            raise call.error
        return call.result

    def waiting(self, app: Flask) -> int:
        """How many calls wait for the thread of ``app`` in this process (for tests)."""
        return self._thread(app).calls.qsize()

    def _thread(self, app: Flask) -> "_Thread":
        thread = app.extensions.get(self.name)
        if thread is None or thread.pid != os.getpid():  # none yet, or the parent's (forked)
            with self._starting:
                thread = app.extensions.get(self.name)
                if thread is None or thread.pid != os.getpid():
                    thread = app.extensions[self.name] = _Thread(app, self)
        return thread


class _Thread:
    """The thread of a process that does a :class:`GroupCommit`'s work (one per app)."""

    def __init__(self, app: Flask, owner: GroupCommit) -> None:
        self.app, self.owner, self.pid = app, owner, os.getpid()
        self.calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=owner.name, daemon=True).start()

    def _run(self) -> None:
        burst = False  # whether the last round took more than one call
        while True:
            calls = [self.calls.get()]
            until = time.monotonic() + (self.owner.gather if burst else 0)
            while len(calls) < MOST:
                try:
                    calls.append(self.calls.get(timeout=max(until - time.monotonic(), 0)))
                except queue.Empty:
                    break
            burst = len(calls) > 1
            groups: dict[Hashable, list[_Call]] = defaultdict(list)
            for call in calls:
                groups[call.key].append(call)
            for group in groups.values():
                self._work(group)

    def _work(self, group: list[_Call]) -> None:
        try:
            with self.app.app_context():
                results = self.owner.work(group[0].key, [call.item for call in group])
        except Exception as exc:  # noqa: BLE001 - the call raises it in its own thread
            if len(group) > 1:  # one item may be what failed: each alone
                for call in group:
                    self._work([call])
                return
            group[0].error = exc
        else:
            for call, result in zip(group, results, strict=True):
                call.result = result
        for call in group:
            call.done.set()
