"""patients: the channel a patient asked for (voice for accessibility...)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('patients', sa.Column('preferred_channel', sa.String(length=10), nullable=True))


def downgrade():
    op.drop_column('patients', 'preferred_channel')
