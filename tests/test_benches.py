"""Every benchmark in bench/ runs to its report, at a small size: the figures in docs/ come from
them, and one that no longer runs (bench.otp did not, for a while) leaves them unprovable."""

import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.worlds import DATABASE_URL, ROOT, RUN, claim_redis_database

# Each: the bench, its arguments at a small size, and words of its report's own (not of the
# lines it prints on the way).
BENCHES = {
    "pipeline-1": (
        "pipeline",
        "--only 1 --messages 300 --baseline-messages 30 --patients 50"
        " --providers outbox,infobip,twilio",
        "Scenario 1 side by side",
    ),
    "pipeline-2": (
        "pipeline",
        "--only 2 --bulk 500 --otps 5 --patients 50",
        "OTP enqueue→provider p99",
    ),
    "pipeline-3": (
        "pipeline",
        "--only 3 --scheduled 500 --scheduled-total 5000 --baseline-scheduled 200 --patients 50",
        "Redis growth",
    ),
    "otp": ("otp", "--codes 5 --interval 0.05 --bulk 500 --patients 50", "request→provider p99"),
    "cpu": ("cpu", "--patients 50 --messages 300 --requests 20 --batches 1", "CPU per unit"),
    "api": ("api", "--patients 50 --seconds 1 --batches 2 --batch 100", "req/s"),
    "reminders": (
        "reminders",
        "--appointments 300 --patients 50 --baseline 100",
        "one pass over them",
    ),
    "campaigns": ("campaigns", "--scale 300 --naive 50 --otps 2", "the naive design's rate"),
    "messaging_inbox": (
        "messaging_inbox",
        "--messages 300 --patients 30 --requests 5",
        "worst p95",
    ),
    "vaccination": ("vaccination", "--centres 3 --weeks 1 --attempts 30 --seconds 1", "bookings: "),
}


@pytest.fixture(scope="module")
def redis_url():
    """A Redis database of its own: each bench flushes the one it is given."""
    return claim_redis_database()


@pytest.mark.parametrize("name", BENCHES)
def test_the_bench_runs_to_its_report(name, redis_url):
    module, arguments, report = BENCHES[name]
    database = sa.make_url(DATABASE_URL).set(database=f"relais_bench_smoke_{RUN}")
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *arguments.split()]
        + ["--database-url", database.render_as_string(hide_password=False)]
        + ["--redis-url", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert report in done.stdout, done.stdout[-3000:]
