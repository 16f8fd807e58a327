"""patients' attribute tokens: a keyed, per-clinic index of their encrypted attributes

``patients.attribute_tokens`` holds ``keyed_token(clinic id, attribute)`` for each attribute
(core.clinic.attribute_index), so that campaign segments select patients by attribute in the
database without decrypting rows; a GIN index on PostgreSQL. Existing patients are indexed
here, in batches.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 14:30:00

"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.crypto import keyed_token, unseal

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    column_type = postgresql.ARRAY(sa.String(16)) if postgres else sa.JSON()
    with op.batch_alter_table("patients") as batch_op:
        batch_op.add_column(
            sa.Column(
                "attribute_tokens",
                column_type,
                nullable=False,
                server_default="{}" if postgres else "[]",
            )
        )
    op.create_index(
        "ix_patients_attribute_tokens", "patients", ["attribute_tokens"], postgresql_using="gin"
    )
    _index_existing(postgres)


def _index_existing(postgres: bool) -> None:
    bind = op.get_bind()
    last = None
    while True:
        query = "SELECT tenant_id, id, attributes FROM patients"
        if last is not None:
            query += " WHERE (tenant_id, id) > (:t, :i)"
        rows = bind.execute(
            sa.text(query + " ORDER BY tenant_id, id LIMIT :n"),
            {"n": BATCH, **({"t": last[0], "i": last[1]} if last else {})},
        ).all()
        if not rows:
            return
        for tenant_id, patient_id, sealed in rows:
            attributes = json.loads(unseal(sealed)) if sealed else []
            found = sorted({keyed_token(str(tenant_id), a) for a in attributes})
            if found:
                bind.execute(
                    sa.text("UPDATE patients SET attribute_tokens = :v WHERE id = :i"),
                    {"v": found if postgres else json.dumps(found), "i": patient_id},
                )
        last = rows[-1][:2]


def downgrade():
    op.drop_index("ix_patients_attribute_tokens", table_name="patients")
    with op.batch_alter_table("patients") as batch_op:
        batch_op.drop_column("attribute_tokens")
