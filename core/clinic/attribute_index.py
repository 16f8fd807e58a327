"""A keyed, per-clinic index of patients' follow-up attributes (which are stored encrypted).

Each attribute a patient has is also kept as a token, ``keyed_token(clinic id, attribute)``
(HMAC-SHA256 under a key derived from the deployment's encryption keys, 64 bits kept), in
the ``patients.attribute_tokens`` column (a PostgreSQL array with a GIN index). A segment
("pregnancy follow-up") is then a condition the database evaluates over an index, for
500,000 patients as for 5, and nothing is decrypted in Python to count or select them.

What the column tells a reader of the database without the key: which patients of one clinic
share a flag, not which flag it is; tokens of two clinics cannot be matched. The tokens follow
the attributes on every save (an ORM event); :func:`reindex` rebuilds them (the migration
that added the column, or after the key they derive from is retired).
"""

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy import event

from core.clinic.models import Patient
from core.crypto import keyed_token
from core.db import db


def tokens(tenant_id, attributes: Iterable[str]) -> list[str]:
    """The index tokens of ``attributes`` in the clinic ``tenant_id``, sorted."""
    return sorted({keyed_token(str(tenant_id), a) for a in attributes or ()})


def has_attribute(tenant_id, attribute: str) -> sa.ColumnElement[bool]:
    """A condition on :class:`Patient`: the patient has ``attribute`` (e.g.
    ``"pregnancy_follow_up"``), answered from the index, without decrypting anything."""
    token = keyed_token(str(tenant_id), attribute)
    if db.engine.dialect.name == "postgresql":
        return Patient.attribute_tokens.op("@>")(
            sa.cast(sa.literal([token], sa.ARRAY(sa.String)), Patient.attribute_tokens.type)
        )
    each = sa.func.json_each(Patient.attribute_tokens).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(each.c.value == token))


def _keep_in_step(mapper, connection, target: Patient) -> None:
    target.attribute_tokens = tokens(target.tenant_id, target.attributes or [])


def install() -> None:
    """Keep every patient's tokens in step with its attributes; called by the app factory."""
    for name in ("before_insert", "before_update"):
        if not event.contains(Patient, name, _keep_in_step):
            event.listen(Patient, name, _keep_in_step)


def reindex(batch: int = 1000) -> int:
    """Compute every patient's tokens again from their (decrypted) attributes, in batches
    by id; returns how many patients were read. Needs the platform's scope."""
    done, last = 0, None
    while True:
        query = sa.select(Patient.tenant_id, Patient.id, Patient.attributes).order_by(
            Patient.tenant_id, Patient.id
        )
        if last is not None:
            query = query.where(sa.tuple_(Patient.tenant_id, Patient.id) > sa.tuple_(*last))
        rows = db.session.execute(query.limit(batch)).all()
        if not rows:
            return done
        db.session.execute(
            sa.update(Patient),
            [{"tenant_id": t, "id": i, "attribute_tokens": tokens(t, a or [])} for t, i, a in rows],
        )
        done += len(rows)
        last = rows[-1][:2]
