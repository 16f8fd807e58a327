"""stored phrases, clinic language: messages.verdict_phrases, tenants.language

A verdict's reasons are stored as codes (English source message and parameters, JSON) and
rendered in each reader's language; verdict_reason keeps their English text for the API and
for the messages judged before. A clinic may choose its default language (a Swiss or Belgian
clinic); empty, its country's.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 11:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verdict_phrases', sa.JSON(), nullable=True))
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=10), nullable=True))


def downgrade():
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('verdict_phrases')
