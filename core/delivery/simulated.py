"""The simulator: the provider of messages that must not leave (a test key's, and any
message to a documented test number), answering as a real provider would.

Nothing is sent anywhere. A message is delivered, unless it goes to a test number
(:data:`core.phones.TEST_NUMBERS`) whose last digit asks for a failure: ``1`` the number
cannot receive (the message falls back to its next channel), ``2`` the provider refuses it
for good, ``3`` a temporary failure, then delivered when the message is tried again.
"""

import sqlalchemy as sa

from core.db import db
from core.delivery.models import Attempt
from core.delivery.providers import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    Outgoing,
    Provider,
    Result,
)
from core.phones import TEST_NUMBERS

NAME = "simulator"  # the provider's name on attempts and messages
ERRORS = {
    UNREACHABLE: "simulated: the number cannot receive messages",
    PERMANENT: "simulated: the provider rejected the message",
    TEMPORARY: "simulated: temporary failure",
}


class Simulator(Provider):
    """Answers every message of a batch without sending it; delivered when taken."""

    name, channel = NAME, "any"
    batch_size = 500
    delivered_on_accept = True

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        failed_once = self._failed_before([o.message_id for o in batch])
        results = []
        for o in batch:
            outcome = TEST_NUMBERS.get(o.to, "delivered")
            if outcome == TEMPORARY and o.message_id in failed_once:
                outcome = "delivered"  # the retry goes through
            if outcome == "delivered":
                results.append(Result(o.message_id, ACCEPTED, provider_ref=f"sim-{o.message_id}"))
            else:
                results.append(Result(o.message_id, outcome, error=ERRORS[outcome]))
        return results

    @staticmethod
    def _failed_before(message_ids) -> set:
        """The messages the simulator already failed temporarily once."""
        return set(
            db.session.scalars(
                sa.select(Attempt.message_id).where(
                    Attempt.message_id.in_(message_ids),
                    Attempt.provider == NAME,
                    Attempt.outcome == TEMPORARY,
                )
            )
        )
