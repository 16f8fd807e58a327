"""campaigns: the index of campaigns by date holds the id

PostgreSQL checks each row referring to a campaign (its chunks and recipients) with one
cached query on ``(tenant_id, id)``. On tables never analyzed (a new deployment, autovacuum
off) the planner took the smallest index starting with ``tenant_id`` and read every campaign
of the clinic for each row written. Holding the id, it is wider than the primary key, which
then wins (issue 14).

Revision ID: campaigns_0003
Revises: campaigns_0002
Create Date: 2026-12-03 04:15:00

"""

from alembic import op

revision = "campaigns_0003"
down_revision = "campaigns_0002"
branch_labels = None
depends_on = None

INDEXES = {"ix_campaigns_created": ("tenant_id", "created_at")}


def upgrade():
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, [*columns, "id"], unique=False)


def downgrade():
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, list(columns), unique=False)
