"""security hardening: replies kept once per provider reference, the numbers of messages
without a patient encrypted, row-level security forced and on tenant_disabled_plugins

- ``inbound_messages``: unique (tenant, provider, provider reference), so that a provider's
  retry or a replayed webhook stores no second reply (copies already stored are removed,
  the first one kept); indexed by (provider, reference) for the webhook's look in every
  clinic before it routes a reply.
- ``messages.address`` (the number of a sign-up or login code, of a staff phone): encrypted
  as the challenge's number is (Fernet, the deployment's keys), existing rows included.
- Row-level security on ``tenant_disabled_plugins`` (it had none), and forced on every
  tenant table of the core, so that the policies hold for the tables' owner too.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 12:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.crypto import seal, unseal
from migrations import rls

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TENANT_TABLES = (
    "access_link_uses",
    "api_keys",
    "attempts",
    "audit_events",
    "clinic_settings",
    "consents",
    "early_receipts",
    "inbound_messages",
    "message_events",
    "messages",
    "patient_practitioners",
    "patients",
    "tenant_disabled_plugins",
    "users",
)
ADDRESSES = sa.table(
    "messages",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("address", sa.Text()),
)


def upgrade():
    op.execute(
        "DELETE FROM inbound_messages WHERE provider_ref IS NOT NULL AND EXISTS ("
        " SELECT 1 FROM inbound_messages AS first WHERE first.tenant_id = inbound_messages.tenant_id"
        " AND first.provider = inbound_messages.provider"
        " AND first.provider_ref = inbound_messages.provider_ref"
        " AND first.id < inbound_messages.id)"
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_inbound_messages_provider_ref", ["tenant_id", "provider", "provider_ref"]
        )
        batch_op.create_index("ix_inbound_messages_ref", ["provider", "provider_ref"])
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column(
            "address", existing_type=sa.String(length=254), type_=sa.Text(), existing_nullable=True
        )
    _rewrite_addresses(seal)
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            rls.protect(table)  # forced; the policy of tenant_disabled_plugins is new


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        rls.unprotect("tenant_disabled_plugins")
        for table in TENANT_TABLES:
            if table != "tenant_disabled_plugins":
                rls.unforce(table)
    _rewrite_addresses(unseal)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column(
            "address", existing_type=sa.Text(), type_=sa.String(length=254), existing_nullable=True
        )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_ref")
        batch_op.drop_constraint("uq_inbound_messages_provider_ref", type_="unique")


def _rewrite_addresses(change) -> None:
    """Encrypt (or decrypt) every message's address: only messages without a patient have
    one (codes, staff phones), a small share of the outbox."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(ADDRESSES.c.tenant_id, ADDRESSES.c.id, ADDRESSES.c.address).where(
            ADDRESSES.c.address.is_not(None)
        )
    ).all()
    for tenant_id, message_id, address in rows:
        bind.execute(
            ADDRESSES.update()
            .where(ADDRESSES.c.tenant_id == tenant_id, ADDRESSES.c.id == message_id)
            .values(address=change(address))
        )
