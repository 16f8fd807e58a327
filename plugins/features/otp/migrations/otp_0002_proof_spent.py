"""otp: a proved number signs up once (spent_at)

Revision ID: otp_0002
Revises: otp_0001
Create Date: 2026-12-02 11:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "otp_0002"
down_revision = "otp_0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("otp_challenges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("otp_challenges", schema=None) as batch_op:
        batch_op.drop_column("spent_at")
