"""The baseline of bench/otp.py: codes in the ``bulk`` queue, FIFO behind the campaign.

Importing this module makes the one change: ``QUEUE_OF_PURPOSE["otp"]`` becomes ``"bulk"``,
so a code waits for every campaign message queued before it, as in a pipeline without
priority queues. The benchmark's baseline web server imports it, and its workers run as
``python -m bench.fifo worker``: ``relais worker`` with that change (the sweeper, which
pushes again the messages Redis seems to have lost, then pushes codes to ``bulk`` too).
"""

import sys

from core.delivery import queues

queues.QUEUE_OF_PURPOSE["otp"] = "bulk"

if __name__ == "__main__":
    from core.web.cli import main

    sys.exit(main())
