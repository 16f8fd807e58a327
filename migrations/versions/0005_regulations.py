"""regulations: each message's verdict names its plugin, rule and date; patients' consent
records; clinics' own plugin settings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:00:00

"""
import sqlalchemy as sa
from alembic import op

from migrations import rls

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TENANT_TABLES = ("consents", "clinic_settings")


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verdict_rule', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('verdict_plugin', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('verdict_until', sa.DateTime(timezone=True), nullable=True))

    op.create_table('consents',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('action', sa.Enum('given', 'confirmed', 'withdrawn', name='consentaction', native_enum=False, length=10), nullable=False),
    sa.Column('method', sa.Enum('form', 'paper', 'sms_reply', 'link', 'api', name='consentmethod', native_enum=False, length=10), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'patient_id'], ['patients.tenant_id', 'patients.id'], name=op.f('fk_consents_tenant_id_patient_id_patients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_consents_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index('ix_consents_patient', ['tenant_id', 'patient_id', 'channel', 'at'], unique=False)

    op.create_table('clinic_settings',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('plugin', sa.String(length=100), nullable=False),
    sa.Column('sealed', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_clinic_settings_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'plugin', name=op.f('pk_clinic_settings'))
    )

    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.protect(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.unprotect(table)
    op.drop_table('clinic_settings')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index('ix_consents_patient')

    op.drop_table('consents')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('verdict_until')
        batch_op.drop_column('verdict_plugin')
        batch_op.drop_column('verdict_rule')
