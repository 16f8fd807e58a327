"""Data retention: erase, then delete, what a country keeps no longer.

Each country's regulation plugin says how long (``relais_retention_policy``; only plugins
enabled for that country answer, and without an answer :data:`core.regulation.DEFAULT_RETENTION`
applies). For every clinic of every country with clinics, in batches that each commit:

1. delivery records past ``records`` are deleted: messages in a final status with their
   history (``message_events``) and provider attempts, patients' replies, and early receipts;
2. contents past ``contents`` are erased: a message's content (text, subject, HTML,
   attachments) becomes :data:`ERASED` ``{"erased": true, "after_days": N, "country": "FR"}``
   and its history gains the step ``erased``; a reply's text and sender number become ``""``.

How old something is:

- a message, from when it **ended** (``finished_at``: delivered, failed, expired, refused,
  cancelled), not from its creation: a message scheduled months ahead, or sent late, keeps its
  content for the full period after it was used. Only messages in a final status are touched;
  one still scheduled, pending, sending or sent-awaiting-receipt never is, however old. The
  queries also say ``created_at < cutoff`` (always true, since a message ends after it is
  created) so that PostgreSQL walks the index on ``(tenant_id, created_at)`` instead of the
  whole table;
- a reply or an early receipt, from its ``at`` (when the provider received it).

A pass is safe to run twice, and beside another one: rows are taken ``FOR UPDATE SKIP LOCKED``,
and what is erased is recognised without decrypting anything (the ``erased`` step of a message's
history; a reply's empty sender), so a second pass finds nothing to do. Nothing of any content
is ever logged: only counts.
"""

import uuid
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from core.db import UTCDateTime, db, utcnow
from core.delivery import lifecycle
from core.delivery.models import (
    FINAL_STATUSES,
    Attempt,
    EarlyReceipt,
    InboundMessage,
    Message,
    MessageEvent,
)
from core.plugins import hooks_for_country
from core.regulation import DEFAULT_RETENTION, Retention
from tenants.models import Tenant
from tenants.scoping import system_scope

BATCH = 2000  # rows per transaction: short locks, bounded memory
ERASED_STEP = "erased"  # the step of a message's history that says its content is gone
ERASED_SENDER = ""  # a reply whose sender is this has had its text erased

KINDS = (
    "messages_erased",
    "messages_deleted",
    "replies_erased",
    "replies_deleted",
    "early_receipts_deleted",
)


def countries() -> list[str]:
    """The codes of the countries that have clinics, in alphabetical order."""
    return list(
        db.session.scalars(sa.select(Tenant.country_code).distinct().order_by(Tenant.country_code))
    )


def policy_for(country_code: str) -> tuple[Retention, str | None]:
    """A country's retention and the plugin that set it (None: the core's default)."""
    hooks = hooks_for_country(country_code)
    for plugin, answer in hooks.each("relais_retention_policy", country_code=country_code):
        if answer is not None:
            return answer, plugin
    return DEFAULT_RETENTION, None


def purge(now: datetime | None = None) -> dict[str, int]:
    """Erase and delete what every country keeps no longer; what the worker runs daily.

    :param now: the time the periods count back from (default: now).
    :return: how many rows of each kind (:data:`KINDS`) were erased or deleted.
    """
    return totals(purge_by_country(now))


def purge_by_country(
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    only: list[str] | None = None,
    on_clinic: Callable[[], None] | None = None,
) -> dict[str, dict]:
    """Purge country by country; logs one line with the counts.

    :param dry_run: count what a purge would do, change nothing.
    :param only: these countries' codes instead of every country with clinics.
    :param on_clinic: called after each clinic (progress bars).
    :return: for each country code, ``{"policy": Retention, "plugin": name or None,
        "counts": {kind: rows}}``.
    """
    now = now or utcnow()
    report = {}
    with system_scope():
        for code in only if only is not None else countries():
            policy, plugin = policy_for(code)
            db.session.rollback()  # end the reads' transaction: each batch has its own
            counts = dict.fromkeys(KINDS, 0)
            for tenant_id in clinics(code):
                for kind, n in _purge_clinic(tenant_id, code, policy, now, dry_run).items():
                    counts[kind] += n
                if on_clinic:
                    on_clinic()
            report[code] = {"policy": policy, "plugin": plugin, "counts": counts}
    current_app.logger.info(
        "retention purge%s: %s",
        " (dry run)" if dry_run else "",
        "; ".join(
            f"{code} " + " ".join(f"{k}={n}" for k, n in r["counts"].items())
            for code, r in report.items()
        )
        or "no clinic",
    )
    return report


def totals(report: dict[str, dict]) -> dict[str, int]:
    """The counts of every country of a :func:`purge_by_country` report, added up."""
    return {kind: sum(r["counts"][kind] for r in report.values()) for kind in KINDS}


def clinics(country_code: str) -> list[uuid.UUID]:
    """The ids of a country's clinics."""
    return list(
        db.session.scalars(
            sa.select(Tenant.id).where(Tenant.country_code == country_code).order_by(Tenant.id)
        )
    )


def _purge_clinic(tenant_id, code: str, policy: Retention, now, dry_run: bool) -> dict[str, int]:
    erase_before, delete_before = now - policy.contents, now - policy.records
    deletable = _messages_ended_before(tenant_id, delete_before)
    erasable = [
        *_messages_ended_before(tenant_id, erase_before),
        _ended() >= delete_before,  # older ones are deleted, not erased
        ~_erased(),
    ]
    replies_deletable = [InboundMessage.tenant_id == tenant_id, InboundMessage.at < delete_before]
    replies_erasable = [
        InboundMessage.tenant_id == tenant_id,
        InboundMessage.at < erase_before,
        InboundMessage.at >= delete_before,
        InboundMessage.sender != ERASED_SENDER,
    ]
    receipts_deletable = [EarlyReceipt.tenant_id == tenant_id, EarlyReceipt.at < delete_before]
    if dry_run:
        counts = {
            "messages_deleted": _count(Message, deletable),
            "messages_erased": _count(Message, erasable),
            "replies_deleted": _count(InboundMessage, replies_deletable),
            "replies_erased": _count(InboundMessage, replies_erasable),
            "early_receipts_deleted": _count(EarlyReceipt, receipts_deletable),
        }
        db.session.rollback()
        return counts
    marker = {"erased": True, "after_days": policy.contents.days, "country": code}
    return {  # deletions first: nothing is erased that is deleted right after
        "messages_deleted": _delete_messages(tenant_id, deletable),
        "messages_erased": _erase_messages(tenant_id, erasable, marker, now),
        "replies_deleted": _delete(InboundMessage, tenant_id, replies_deletable),
        "replies_erased": _erase_replies(tenant_id, replies_erasable),
        "early_receipts_deleted": _delete(EarlyReceipt, tenant_id, receipts_deletable),
    }


# --- which rows -------------------------------------------------------------------------------


def _ended():
    """When a message ended (its creation, for a final message that has no end recorded)."""
    return sa.func.coalesce(Message.finished_at, Message.created_at, type_=UTCDateTime)


def _messages_ended_before(tenant_id, cutoff: datetime) -> list:
    return [
        Message.tenant_id == tenant_id,
        Message.status.in_(FINAL_STATUSES),
        Message.created_at < cutoff,  # implied by the next line; it lets the index be used
        _ended() < cutoff,
    ]


def _erased():
    return (
        sa.select(MessageEvent.id)
        .where(
            MessageEvent.tenant_id == Message.tenant_id,
            MessageEvent.message_id == Message.id,
            MessageEvent.status == ERASED_STEP,
        )
        .exists()
    )


def _count(model, where: list) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


# --- what is done to them ---------------------------------------------------------------------


def _delete_messages(tenant_id, where: list) -> int:
    done = 0
    while ids := _take(sa.select(Message.id).where(*where)):
        for model in (MessageEvent, Attempt):  # no foreign key cascades: history goes here
            _run(sa.delete(model).where(model.tenant_id == tenant_id, model.message_id.in_(ids)))
        _run(sa.delete(Message).where(Message.tenant_id == tenant_id, Message.id.in_(ids)))
        db.session.commit()
        done += len(ids)
    return done


def _erase_messages(tenant_id, where: list, marker: dict, now: datetime) -> int:
    """Walks the clinic's messages oldest first, by (created_at, id), so each batch starts
    where the last one ended instead of passing over the erased ones again."""
    done, last = 0, None
    while True:
        stmt = sa.select(Message.id, Message.created_at).where(*where)
        if last is not None:
            stmt = stmt.where(
                Message.created_at >= last.created_at,
                sa.or_(Message.created_at > last.created_at, Message.id > last.id),
            )
        rows = db.session.execute(
            stmt.order_by(Message.created_at, Message.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True, of=Message)
        ).all()
        if not rows:
            db.session.rollback()
            return done
        ids = [r.id for r in rows]
        # One sealed marker for the whole batch: the same ciphertext, holding no secret.
        _run(
            sa.update(Message)
            .where(Message.tenant_id == tenant_id, Message.id.in_(ids))
            .values(content=marker)
        )
        lifecycle.note_many(tenant_id, ids, ERASED_STEP, now)
        db.session.commit()
        done, last = done + len(ids), rows[-1]


def _erase_replies(tenant_id, where: list) -> int:
    done, last = 0, None
    while True:
        stmt = sa.select(InboundMessage.id).where(*where)
        if last is not None:
            stmt = stmt.where(InboundMessage.id > last)
        ids = _take(stmt.order_by(InboundMessage.id))
        if not ids:
            return done
        _run(
            sa.update(InboundMessage)
            .where(InboundMessage.tenant_id == tenant_id, InboundMessage.id.in_(ids))
            .values(text="", sender=ERASED_SENDER)
        )
        db.session.commit()
        done, last = done + len(ids), ids[-1]


def _delete(model, tenant_id, where: list) -> int:
    done = 0
    while ids := _take(sa.select(model.id).where(*where)):
        _run(sa.delete(model).where(model.tenant_id == tenant_id, model.id.in_(ids)))
        db.session.commit()
        done += len(ids)
    return done


def _take(stmt) -> list:
    """A batch of ids, locked; rows another purge holds are left to it. Ends the
    transaction when there is none."""
    ids = list(db.session.scalars(stmt.limit(BATCH).with_for_update(skip_locked=True)))
    if not ids:
        db.session.rollback()
    return ids


def _run(stmt) -> None:
    db.session.execute(stmt.execution_options(synchronize_session=False))
