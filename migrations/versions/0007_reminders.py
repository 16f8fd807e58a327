"""reminders: which outbox messages are an appointment's reminders; RLS

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 15:30:00

"""
import sqlalchemy as sa
from alembic import op

from migrations import rls

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TENANT_TABLES = ("reminders",)


def upgrade():
    op.create_table('reminders',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=False),
    sa.Column('minutes_before', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'appointment_id'], ['appointments.tenant_id', 'appointments.id'], name=op.f('fk_reminders_tenant_id_appointment_id_appointments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'message_id'], ['messages.tenant_id', 'messages.id'], name=op.f('fk_reminders_tenant_id_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_reminders_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'message_id', name=op.f('pk_reminders'))
    )
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index('ix_reminders_appointment', ['tenant_id', 'appointment_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.protect(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.unprotect(table)
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_reminders_appointment')

    op.drop_table('reminders')
