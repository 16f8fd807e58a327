"""appointments: the appointments feature's table (times in UTC, the reason encrypted,
practice software's external id unique per clinic); RLS

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:48:55.048910

"""
import sqlalchemy as sa
from alembic import op

from migrations import rls

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TENANT_TABLES = ("appointments",)


def upgrade():
    op.create_table('appointments',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('practitioner_id', sa.Uuid(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('booked', 'confirmed', 'cancelled', 'no_show', 'done', name='appointmentstatus', native_enum=False, length=20), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('location', sa.String(length=300), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_appointments_ends_after_start')),
    sa.ForeignKeyConstraint(['tenant_id', 'patient_id'], ['patients.tenant_id', 'patients.id'], name=op.f('fk_appointments_tenant_id_patient_id_patients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'practitioner_id'], ['users.tenant_id', 'users.id'], name=op.f('fk_appointments_tenant_id_practitioner_id_users')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_appointments_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_appointments')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_appointments_tenant_id_external_id'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_patient', ['tenant_id', 'patient_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_appointments_practitioner', ['tenant_id', 'practitioner_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_appointments_starts_at', ['tenant_id', 'starts_at'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.protect(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.unprotect(table)
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_starts_at')
        batch_op.drop_index('ix_appointments_practitioner')
        batch_op.drop_index('ix_appointments_patient')

    op.drop_table('appointments')
