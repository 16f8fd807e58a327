"""vaccination: a function the app role calls to refresh the centres' planner statistics

The CSV import writes thousands of centres and then, in the same transaction, hundreds of
thousands of opening days and stock rows whose foreign keys PostgreSQL checks one by one
against the centres. On a table without statistics (a new cell's first import), the planner
checks each key through the (tenant_id, code) index, reading half the clinic's centres for
every row: quadratic, 27 s of the server's CPU for 2,000 centres x 8 weeks. ANALYZE needs the
table's owner: this SECURITY DEFINER function, owned by the migrations' role and callable by
the app role only, runs it for that one table.

Revision ID: vaccination_0003
Revises: vaccination_0002
Create Date: 2026-12-03 04:00:00

"""

from alembic import op

revision = "vaccination_0003"
down_revision = "vaccination_0002"
branch_labels = None
depends_on = None

FUNCTION = "vaccination_analyze_centres"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS void
        LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public
        AS 'ANALYZE public.vaccination_centres';
        REVOKE ALL ON FUNCTION {FUNCTION}() FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION {FUNCTION}() TO relais_app;
    """)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
