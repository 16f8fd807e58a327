"""A patient's sex (FHIR's administrative gender), optional

- ``patients.sex``: ``female``, ``male``, ``other``, ``unknown``, or NULL (not given); in
  clear, as the birth date, so that campaigns' segments filter on it in SQL.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 03:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("patients", sa.Column("sex", sa.String(7)))


def downgrade():
    op.drop_column("patients", "sex")
