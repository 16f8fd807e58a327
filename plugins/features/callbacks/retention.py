"""The delivery log's retention: an event that is done (delivered or given up) is deleted
with its attempts :data:`KEEP` after its last attempt, a bounded batch on each sweep, so the
log never grows without end and no pass holds locks for long.

An event's last attempt is when it was last due (``next_attempt_at``): the index the sweeper
already walks for due events, ``(state, next_attempt_at)``, finds the old ones too.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa

from core.plugin_api import db
from plugins.features.callbacks.models import DELIVERED, GIVEN_UP, Attempt, Event

KEEP = timedelta(days=30)  # docs/api.md says so
BATCH = 1000  # events per pass, with their attempts


def purge(now: datetime) -> int:
    """Delete up to :data:`BATCH` events done before ``now - KEEP``, of every clinic (in the
    system scope), with their attempts; commit. Returns how many events. Safe beside another
    pass: the rows are taken ``FOR UPDATE SKIP LOCKED``."""
    keys = [
        tuple(row)
        for row in db.session.execute(
            sa.select(Event.tenant_id, Event.id)
            .where(Event.state.in_((DELIVERED, GIVEN_UP)), Event.next_attempt_at < now - KEEP)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    ]
    if not keys:
        db.session.rollback()
        return 0
    db.session.execute(
        sa.delete(Attempt)
        .where(sa.tuple_(Attempt.tenant_id, Attempt.event_id).in_(keys))
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.delete(Event)
        .where(sa.tuple_(Event.tenant_id, Event.id).in_(keys))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return len(keys)
