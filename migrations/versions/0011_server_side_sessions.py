"""server-side sessions and a lockout by e-mail address

Login sessions are kept on the server (login_sessions: the hash of each session's id), so
that a logout, a new password or a deactivation ends every copy of a cookie. Failed logins
are counted by e-mail address, known or not (login_throttles), instead of on the account:
the columns users/operators.failed_logins and locked_until go.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 11:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

ACCOUNTS = ('users', 'operators')


def upgrade():
    op.create_table('login_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('realm', sa.String(length=60), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_sessions'))
    )
    with op.batch_alter_table('login_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_login_sessions_realm_account', ['realm', 'account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_sessions_seen_at'), ['seen_at'], unique=False)

    op.create_table('login_throttles',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttles'))
    )
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttles_updated_at'), ['updated_at'], unique=False)

    for table in ACCOUNTS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('failed_logins')
            batch_op.drop_column('locked_until')


def downgrade():
    for table in ACCOUNTS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(
                sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0')
            )
    op.drop_table('login_throttles')
    op.drop_table('login_sessions')
