"""The sweeper beside a worker while Redis is down: it waits, says so once, and goes on."""

import logging
import time

from core.app import create_app
from core.delivery.sweeper import Sweeper
from tests.worlds import TEST_CONFIG


def test_a_sweeper_says_a_redis_outage_once_instead_of_a_traceback_every_pass(app, caplog):
    unreachable = create_app({**TEST_CONFIG, "REDIS_URL": "redis://127.0.0.1:9/0"})  # no one
    sweeper = Sweeper(unreachable, interval=0.02)
    with caplog.at_level(logging.WARNING):
        sweeper.start()
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # a dozen more passes, all refused by the closed port
        sweeper.stopped.set()
        sweeper.join(timeout=5)

    said = [r.getMessage() for r in caplog.records]
    assert said.count("sweeper: Redis does not answer; waiting for it") == 1, said
    assert not any("sweep failed" in line for line in said), said
    assert not sweeper.is_alive()
