"""References stay cheap to check on tables never analyzed (issue 14).

PostgreSQL checks each row written to a table with a foreign key by looking the referenced
row up with one cached query, planned once per connection. On tables never analyzed (a new
deployment, autovacuum off) the planner takes the smallest index that starts with the
reference's first column: an index on ``(tenant_id, last_name)`` beat the primary key
``(tenant_id, id)`` and read every patient of the clinic for each message written. An index
that starts like a reference must hold all of its columns, so that it is always wider than
the referenced key and never chosen over it.

A unique index cannot take more columns without changing what it forbids (one e-mail per
clinic's staff, one code per centre): those plans are made right by the statistics the
sweeper keeps (core/statistics.py) within a minute of the tables growing.
"""

import sqlalchemy as sa

from core.db import db

COMPETITORS = """
SELECT DISTINCT c.conrelid::regclass::text AS referring, c.confrelid::regclass::text AS referred,
       i.indexrelid::regclass::text AS index
FROM pg_constraint c
JOIN pg_index i ON i.indrelid = c.confrelid AND i.indexrelid <> c.conindid
WHERE c.contype = 'f'
  AND i.indkey[0] = c.confkey[1]
  AND i.indpred IS NULL
  AND NOT i.indisunique
  AND NOT (c.confkey <@ string_to_array(i.indkey::text, ' ')::smallint[])
ORDER BY 2, 3
"""


def test_an_index_starting_like_a_reference_holds_all_its_columns(app):
    with app.app_context():
        found = db.session.execute(sa.text(COMPETITORS)).all()
    assert found == [], "\n".join(f"{r.index} (referred to by {r.referring})" for r in found)
