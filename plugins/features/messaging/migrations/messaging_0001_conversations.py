"""messaging: conversations, their messages (bodies encrypted), attachments (encrypted),
blocks and closed inboxes; RLS

Revision ID: messaging_0001
Create Date: 2026-12-02 11:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.plugin_api import protect_tenant_rows

revision = "messaging_0001"
down_revision = None
branch_labels = ("messaging",)
depends_on = None  # on the core only (patients, users): `relais db upgrade` runs it first

TABLES = (
    "messaging_conversations",
    "messaging_messages",
    "messaging_attachments",
    "messaging_blocks",
    "messaging_inboxes",
)


def _tenant(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _patient(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "patient_id"],
        ["patients.tenant_id", "patients.id"],
        name=op.f(f"fk_{table}_tenant_id_patient_id_patients"),
        ondelete="CASCADE",
    )


def _practitioner(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "practitioner_id"],
        ["users.tenant_id", "users.id"],
        name=op.f(f"fk_{table}_tenant_id_practitioner_id_users"),
        ondelete="CASCADE",
    )


def _author(name: str) -> sa.Enum:
    return sa.Enum("patient", "staff", "auto", name=name, native_enum=False, length=20)


def upgrade():
    t = "messaging_conversations"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("started_by", _author("author"), nullable=False),
        sa.Column(
            "reply_mode",
            sa.Enum("none", "once", "until_closed", name="replymode", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("awaiting_staff", sa.Boolean(), nullable=False),
        sa.Column("unread_by_staff", sa.Boolean(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.Uuid(), nullable=True),
        _tenant(t),
        _patient(t),
        _practitioner(t),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_messaging_conversations_inbox", t, ["tenant_id", "last_message_at", "id"])
    op.create_index(
        "ix_messaging_conversations_practitioner",
        t,
        ["tenant_id", "practitioner_id", "last_message_at", "id"],
    )
    op.create_index(
        "ix_messaging_conversations_patient",
        t,
        ["tenant_id", "patient_id", "last_message_at", "id"],
    )
    op.create_index(
        "ix_messaging_conversations_awaiting",
        t,
        ["tenant_id", "last_message_at", "id"],
        postgresql_where=sa.text("awaiting_staff"),
        sqlite_where=sa.text("awaiting_staff"),
    )
    op.create_index(
        "ix_messaging_conversations_unread",
        t,
        ["tenant_id", "practitioner_id"],
        postgresql_where=sa.text("unread_by_staff"),
        sqlite_where=sa.text("unread_by_staff"),
    )

    t = "messaging_messages"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("author", _author("author"), nullable=False),
        sa.Column("author_user_id", sa.Uuid(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        _tenant(t),
        sa.ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["messaging_conversations.tenant_id", "messaging_conversations.id"],
            name=op.f(f"fk_{t}_tenant_id_conversation_id_messaging_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index(
        "ix_messaging_messages_conversation", t, ["tenant_id", "conversation_id", "created_at"]
    )

    t = "messaging_attachments"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("mime_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _tenant(t),
        sa.ForeignKeyConstraint(
            ["tenant_id", "message_id"],
            ["messaging_messages.tenant_id", "messaging_messages.id"],
            name=op.f(f"fk_{t}_tenant_id_message_id_messaging_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_messaging_attachments_message", t, ["tenant_id", "message_id"])

    t = "messaging_blocks"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("blocked_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _tenant(t),
        _patient(t),
        _practitioner(t),
        sa.PrimaryKeyConstraint("tenant_id", "practitioner_id", "patient_id", name=op.f(f"pk_{t}")),
    )

    t = "messaging_inboxes"
    op.create_table(
        t,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_answer", sa.Text(), nullable=True),
        _tenant(t),
        _practitioner(t),
        sa.PrimaryKeyConstraint("tenant_id", "practitioner_id", name=op.f(f"pk_{t}")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            protect_tenant_rows(table)


def downgrade():
    for table in reversed(TABLES):
        op.drop_table(table)
