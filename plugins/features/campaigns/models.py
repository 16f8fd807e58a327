"""A campaign, the chunks its recipients are written in, and each recipient's row.

The recipient rows are the campaign's memory of who was written: their primary key
(clinic, campaign, patient) is what keeps one patient from getting the message twice, however
many workers run a chunk and however often (a chunk claims its patients with one
``INSERT ... ON CONFLICT DO NOTHING`` before it sends).
"""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.plugin_api import TenantOwned, UTCDateTime, created_column, db, id_column

STATES = ("draft", "scheduled", "running", "paused", "cancelled", "done")


class Campaign(TenantOwned, db.Model):
    """A message to a segment of the clinic's patients, per language, by some channels."""

    __tablename__ = "campaigns"
    # Holds the id: wider than the key its chunks and recipients are checked by.
    __table_args__ = (sa.Index("ix_campaigns_created", "tenant_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(sa.String(200))
    # {language: text}: each patient gets the text of their language, else default_language's.
    templates: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    default_language: Mapped[str] = mapped_column(sa.String(5))
    channels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    segment: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    state: Mapped[str] = mapped_column(sa.String(12), default="draft")
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rate: Mapped[int | None]  # messages per minute, or as fast as the workers go
    created_at: Mapped[datetime] = created_column()
    created_by: Mapped[str | None] = mapped_column(sa.String(254))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When it started: how many the segment held, and per channel why some were left out.
    total: Mapped[int | None]
    excluded: Mapped[dict | None] = mapped_column(sa.JSON)
    # The operator's country-wide campaign this one is the clinic's part of, if any.
    country_run: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    # When its plan job was last queued (or is due, for a scheduled start): a plan not run a
    # lease after it is queued again by the sweep.
    plan_queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignChunk(TenantOwned, db.Model):
    """A range of patient ids, (after_id, last_id], written by one job."""

    __tablename__ = "campaign_chunks"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            ondelete="CASCADE",
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    after_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    last_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When its job was last queued (or is due, with a rate); None while no job was queued
    # (the chunk before it queues it). Not done a lease after: queued again by the sweep.
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignRecipient(TenantOwned, db.Model):
    """One patient of a campaign: claimed before sending, then its message and first outcome
    (``queued``, ``deferred``, ``refused``, ``invalid``)."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"], ondelete="CASCADE"
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    outcome: Mapped[str] = mapped_column(sa.String(12), default="claimed")
