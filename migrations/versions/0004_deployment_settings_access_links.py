"""push: deployment-wide plugin settings (VAPID keys), used access links, and an index for
sent messages awaiting a device's acknowledgement

(Patients' push subscriptions, first created here, are the webpush plugin's: its branch.)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00

"""
import sqlalchemy as sa
from alembic import op

from migrations import rls

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TENANT_TABLES = ("access_link_uses",)


def upgrade():
    op.create_table('deployment_settings',
    sa.Column('plugin', sa.String(length=100), nullable=False),
    sa.Column('sealed', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('plugin', name=op.f('pk_deployment_settings'))
    )
    op.create_table('access_link_uses',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'patient_id'], ['patients.tenant_id', 'patients.id'], name=op.f('fk_access_link_uses_tenant_id_patient_id_patients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_access_link_uses_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'nonce', name=op.f('pk_access_link_uses'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_sent', ['status', 'provider', 'sent_at'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.protect(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.unprotect(table)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_sent')

    op.drop_table('access_link_uses')
    op.drop_table('deployment_settings')
