"""appointments: nothing of the core's (the appointments table is the appointments plugin's)

This revision created the appointments table until plugins had branches of their own; that
table is now created, or adopted on a database migrated before the move, by the first
revision of the appointments plugin's branch. The revision stays, empty, so that a
database migrated up to it still finds its place in the history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:48:55.048910

"""

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
