"""The naive design the benchmark compares Relais with: one RQ job per message.

What a user would write first: a ``naive_messages`` table, and for each row an RQ job that
loads it, "sends" it (a row in ``naive_deliveries``, as the outbox channel does) and marks it
sent. It runs on RQ's default forking ``Worker`` (``rq worker``), one fork per job.

``rq worker -c bench.naive`` imports this module in the worker's parent process, so each
forked child starts with psycopg and this function already imported: the baseline gets its
best case, not an import per job. A connection cannot cross a fork, so each job opens its own
(as it would with any pool created before the fork).
"""

import os

import psycopg

# The same database as the benchmark, in libpq's form (set by bench/pipeline.py).
DSN = os.environ.get("NAIVE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/relais_bench")

SCHEMA = """
DROP TABLE IF EXISTS naive_deliveries, naive_messages;
CREATE TABLE naive_messages (
    id bigserial PRIMARY KEY,
    recipient text NOT NULL,
    text text NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at timestamptz
);
CREATE TABLE naive_deliveries (
    id bigserial PRIMARY KEY,
    message_id bigint NOT NULL UNIQUE REFERENCES naive_messages (id),
    recipient text NOT NULL,
    text text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""


def send_message(message_id: int) -> bool:
    """The job: load the message, hand it to the "provider", mark it sent (safe to rerun)."""
    with psycopg.connect(DSN) as conn:
        row = conn.execute(
            "SELECT recipient, text FROM naive_messages WHERE id = %s AND status = 'pending'"
            " FOR UPDATE",
            (message_id,),
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            "INSERT INTO naive_deliveries (message_id, recipient, text) VALUES (%s, %s, %s)"
            " ON CONFLICT (message_id) DO NOTHING",
            (message_id, *row),
        )
        conn.execute(
            "UPDATE naive_messages SET status = 'sent', sent_at = clock_timestamp() WHERE id = %s",
            (message_id,),
        )
    return True
