"""message references: the API key that wrote a message and its client's reference

A client's reference makes a batch idempotent: a retry of the same batch with the same
references creates nothing twice (unique per clinic and key).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("reference", sa.String(length=100), nullable=True))
    # tenant_id leads, as every unique key of a tenant-owned table (ready for Citus).
    op.create_index(
        "ux_messages_reference",
        "messages",
        ["tenant_id", "api_key_id", "reference"],
        unique=True,
        postgresql_where=sa.text("reference IS NOT NULL"),
        sqlite_where=sa.text("reference IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ux_messages_reference", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("reference")
        batch_op.drop_column("api_key_id")
