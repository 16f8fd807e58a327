"""API keys of three kinds (live, test, team), and the kind on each message a key wrote

- ``api_keys.kind``: ``live`` for the keys made before (they keep working as they did).
- ``messages.key_kind``: the kind of the key that wrote the message; NULL for messages a
  page, a reminder or a campaign wrote.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 15:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "api_keys", sa.Column("kind", sa.String(4), nullable=False, server_default="live")
    )
    op.add_column("messages", sa.Column("key_kind", sa.String(4)))


def downgrade():
    op.drop_column("messages", "key_kind")
    op.drop_column("api_keys", "kind")
