"""core.group_commit's gathering: a call that comes alone is worked at once; while a burst is
on, the first call of a transaction waits for others to join it."""

import threading
import time

from core.group_commit import GroupCommit
from tests.worlds import wait_until


def test_a_call_alone_waits_for_no_one_and_calls_of_a_burst_are_gathered(app):
    groups, holding, release = [], threading.Event(), threading.Event()

    def work(_key, items):
        if "hold" in items:
            holding.set()
            release.wait(10)
        groups.append(items)
        return items

    together = GroupCommit("relais-test-gather", work, gather=1.0)
    answers = {}

    def call(item):
        with app.app_context():
            answers[item] = together("clinic", item)

    def started(item) -> threading.Thread:
        thread = threading.Thread(target=call, args=(item,))
        thread.start()
        return thread

    begun = time.monotonic()
    call("alone")
    assert time.monotonic() - begun < 0.5  # no gathering after a quiet moment

    # A burst: two calls queue while the transaction before them is held.
    threads = [started("hold")]
    assert holding.wait(5)
    threads += [started("b"), started("c")]
    wait_until(lambda: together.waiting(app) == 2, timeout=5)
    release.set()
    wait_until(lambda: ["b", "c"] in groups, timeout=5)

    # The burst is on: the next call waits for others, and the one that comes meanwhile
    # joins its transaction.
    begun = time.monotonic()
    threads += [started("d")]
    time.sleep(0.2)
    threads += [started("e")]
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - begun >= 0.9
    assert groups == [["alone"], ["hold"], ["b", "c"], ["d", "e"]]
    assert answers == {item: item for item in ("alone", "hold", "b", "c", "d", "e")}
