"""A message's call in flight: written with the claim instead of an attempt before the call

- ``messages.calling``, ``messages.calling_since``: the provider a worker called for the
  message, and when, while that call's outcome is unknown (the worker died during it, or it
  failed in a way that may have reached the provider). A worker's claim writes them for the
  calls it is about to make, in the claim's own UPDATE, so that an attempt is written once,
  with its outcome, after the call (it was an INSERT before the call and an UPDATE after).
- The attempts still ``in_flight`` or ``unknown`` of messages not sent yet are carried over,
  so that their next claim looks them up as before.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 07:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("messages", sa.Column("calling", sa.String(50)))
    op.add_column("messages", sa.Column("calling_since", sa.DateTime(timezone=True)))
    unknown = """
        FROM attempts a WHERE a.tenant_id = messages.tenant_id AND a.message_id = messages.id
        AND a.outcome IN ('in_flight', 'unknown')
    """
    op.execute(f"""
        UPDATE messages SET
            calling = (SELECT a.provider {unknown} ORDER BY a.at DESC LIMIT 1),
            calling_since = (SELECT min(a.at) {unknown})
        WHERE status IN ('pending', 'sending') AND EXISTS (SELECT 1 {unknown})
    """)


def downgrade():
    op.drop_column("messages", "calling_since")
    op.drop_column("messages", "calling")
