"""The delivery pipeline: outbox, queues, dispatch, retries, failover, fallback, receipts.

A message's way: :func:`core.delivery.outbox.send` judges and writes it in the caller's
transaction; after commit its id goes to the RQ queue of its priority; a worker claims it in
the database, sends it through a provider chosen by route and health, retries, fails over,
falls back to the next channel; receipts and replies come back on signed webhooks. Each of
these steps changes the message's status through :mod:`core.delivery.lifecycle`, the one
module that writes statuses and their history and tells plugins of each change.
"""
