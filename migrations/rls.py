"""Row-level security for tenant-owned tables on PostgreSQL: the second wall of tenancy.

Each application transaction runs as ``relais_app`` (``SET LOCAL ROLE``) with the setting
``relais.tenant_id`` holding its tenant, or ``*`` for the platform's own work; the policy
lets a row through only when they match. No setting, no rows. The policies are forced: they
hold for the tables' owner too (the role migrations run as), except in migrations, whose
connection acts for the platform (migrations/env.py).
"""

from alembic import op

ROLE = "relais_app"


def create_app_role() -> None:
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
        END $$;
        GRANT USAGE ON SCHEMA public TO {ROLE};
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE};
        REVOKE ALL ON TABLE alembic_version FROM {ROLE};
    """)
    # The role a deployment logs in as must be able to switch to the app role.
    op.execute(f"GRANT {ROLE} TO CURRENT_USER")


def protect(table: str) -> None:
    """Let a tenant-owned table's rows through only to their tenant's transactions (and the
    platform's own work), for its owner too (FORCE): call it in the migration that creates
    the table, on PostgreSQL. Calling it again on a protected table changes nothing."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"""
        CREATE POLICY tenant_isolation ON {table}
        USING (current_setting('relais.tenant_id', true) = '*'
               OR tenant_id::text = current_setting('relais.tenant_id', true))
    """)


def unforce(table: str) -> None:
    """Let the table's owner through again (what :func:`protect` did before it forced)."""
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")


def unprotect(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
