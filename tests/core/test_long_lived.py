"""A process served for long leaves what its startup built out of the garbage collector's
full collections (``core.app.long_lived``), as gunicorn's app does (``wsgi.py``)."""

import subprocess
import sys

from tests.core.test_cli import ROOT, deployment_environment

SCRIPT = """
import gc, sys
import wsgi
print(gc.get_freeze_count(), len(gc.get_objects()), "holidays.countries" in sys.modules)
"""


def test_the_app_gunicorn_serves_is_built_then_frozen_with_the_holidays_loaded():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=deployment_environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    frozen, tracked, holidays = done.stdout.split()
    # Startup's objects (translations, phone metadata, mappers...) are frozen; a full
    # collection walks only what was made since (a handful here).
    assert int(frozen) > 100_000
    assert int(tracked) < 1_000
    # The first message judged does not load every country's holidays (168 ms) after it.
    assert holidays == "True"
