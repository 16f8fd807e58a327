"""otp: messages to an address; patients' and staff phones verified

(The codes' table, first created here, is the otp plugin's: its branch.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 17:50:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # A code to a phone number nobody's record holds yet (a sign-up, a staff member).
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.alter_column('patient_id', existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column('address', sa.String(length=254), nullable=True))

    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signed_up_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('review_needed', sa.Boolean(), nullable=False, server_default=sa.false()))
    # One account per verified phone number in a clinic: logging in by code finds it.
    op.create_index('ux_patients_account_phone', 'patients', ['tenant_id', 'phone'], unique=True,
                    postgresql_where=sa.text('signed_up_at IS NOT NULL'),
                    sqlite_where=sa.text('signed_up_at IS NOT NULL'))

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detail', sa.String(length=200), nullable=True))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('phone_verified_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('phone_verified_at')
        batch_op.drop_column('phone')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('detail')
    op.drop_index('ux_patients_account_phone', table_name='patients')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('review_needed')
        batch_op.drop_column('signed_up_at')
    op.execute("DELETE FROM messages WHERE patient_id IS NULL")
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('address')
        batch_op.alter_column('patient_id', existing_type=sa.Uuid(), nullable=False)
