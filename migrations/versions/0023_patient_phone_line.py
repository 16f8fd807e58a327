"""A patient's phone line: mobile or landline, stored with the phone

- ``patients.phone_line``: ``mobile`` (takes SMS), ``landline``, or NULL (no phone, or one
  that does not parse). Set whenever the phone is (core.clinic.models.Patient), so that a
  worker reads it instead of parsing the number of every patient it sends a message to.
  Existing patients get theirs here, a thousand numbers at a time.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 07:30:00

"""

import sqlalchemy as sa
from alembic import op

from core.phones import line_type

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade():
    op.add_column("patients", sa.Column("phone_line", sa.String(8)))
    bind = op.get_bind()
    phones = bind.execute(
        sa.text("SELECT DISTINCT phone FROM patients WHERE phone IS NOT NULL")
    ).scalars()
    by_line: dict[str, list[str]] = {}
    for phone in phones:
        line = line_type(phone)
        if line:
            by_line.setdefault(line, []).append(phone)
    update = sa.text("UPDATE patients SET phone_line = :line WHERE phone IN :phones").bindparams(
        sa.bindparam("phones", expanding=True)
    )
    for line, numbers in by_line.items():
        for start in range(0, len(numbers), BATCH):
            bind.execute(update, {"line": line, "phones": numbers[start : start + BATCH]})


def downgrade():
    op.drop_column("patients", "phone_line")
