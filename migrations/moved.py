"""Tables the core's history created before their plugins had branches of their own.

Up to revision 0008 the core's history created the built-in plugins' tables too (outbox,
webpush, appointments, reminders, otp). A database migrated then has them, rows and all: the
plugin's first revision adopts such a table as it is instead of creating it.
"""

import sqlalchemy as sa
from alembic import op


def exists(table: str) -> bool:
    """Whether the database already has ``table``.

    Offline (``relais db upgrade --sql``) there is no database to ask: the SQL printed is a
    new database's, which has none of them.
    """
    if op.get_context().as_sql:
        return False
    return sa.inspect(op.get_bind()).has_table(table)
