"""reminders: nothing of the core's (the reminders table is the reminders plugin's)

This revision created the reminders table until plugins had branches of their own; that
table is now created, or adopted on a database migrated before the move, by the first
revision of the reminders plugin's branch. The revision stays, empty, so that a database
migrated up to it still finds its place in the history.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 15:30:00

"""

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
