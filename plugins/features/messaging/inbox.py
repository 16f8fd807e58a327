"""The staff inbox: conversations newest first, one query per page, paginated by keyset
(the last row's time and id), never by OFFSET, so that page 1,000 costs what page 1 does.

The counters (unread, unhandled) are two index-only counts on partial indexes.
"""

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask_babel import gettext as _

from core.plugin_api import Patient, Role, User, ValidationError, db, works_for
from plugins.features.messaging.models import Conversation

PAGE_SIZE = 25
FILTERS = ("all", "unhandled", "mine")


@dataclass(frozen=True)
class Row:
    """One conversation as the inbox lists it (no content: bodies are opened one by one)."""

    id: uuid.UUID
    last_message_at: datetime
    unread: bool
    awaiting: bool
    closed: bool
    patient_id: uuid.UUID
    patient_name: str
    practitioner_name: str


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None  # for the next page's ``after``


def cursor(at: datetime, conversation_id: uuid.UUID) -> str:
    """An opaque keyset cursor: the position after which the next page starts."""
    raw = f"{at.isoformat()}|{conversation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(text: str) -> tuple[datetime, uuid.UUID]:
    """:raises ValidationError: on ``after`` when the cursor is not one the inbox gave."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        at, _sep, conversation_id = raw.partition("|")
        found = datetime.fromisoformat(at), uuid.UUID(conversation_id)
    except (ValueError, UnicodeDecodeError):
        found = None
    if found is None or found[0].tzinfo is None:
        message = _("This page link is not valid: start again from the first page.")
        raise ValidationError(message, "after")
    return found


def page(
    user: User,
    show: str = "all",
    patient_id: uuid.UUID | None = None,
    after: str | None = None,
    size: int = PAGE_SIZE,
    offset: int | None = None,
    unhandled_only: bool = False,
) -> Page:
    """A page of the inbox for ``user``, in one query.

    :param show: ``all``, ``unhandled`` (the patient wrote, nobody marked it handled) or
        ``mine`` (the conversations of the practitioner viewing it).
    :param after: the cursor of the previous page's last row.
    :param unhandled_only: with ``show="mine"``, the unhandled ones only (the dashboard).
    :param offset: skip that many rows instead of a cursor (the slow way, kept only so that
        the bench can compare the two).
    :raises ValidationError: on ``show`` or ``after``.
    """
    if show not in FILTERS:
        raise ValidationError(_("Choose all, unhandled or mine."), "show")
    # The page's conversations first, alone (a subquery with its LIMIT), then their names:
    # joined at once, the planner, misled by the row-level security policies' estimates,
    # would join every conversation of the clinic before sorting them (150 ms at 60,000).
    c = Conversation
    inner = sa.select(c).order_by(c.last_message_at.desc(), c.id.desc()).limit(size + 1)
    if show == "unhandled" or unhandled_only:
        inner = inner.where(c.awaiting_staff)
    elif show == "mine":
        inner = inner.where(c.practitioner_id == user.id)
    if patient_id is not None:
        inner = inner.where(c.patient_id == patient_id)
    scope = works_for(user)
    if scope is not None:  # a secretary: the practitioners they work for only
        inner = inner.where(c.practitioner_id.in_(sorted(scope)))
    if after:
        at, last_id = parse_cursor(after)
        inner = inner.where(sa.tuple_(c.last_message_at, c.id) < sa.tuple_(at, last_id))
    elif offset:
        inner = inner.offset(offset)
    found = sa.orm.aliased(Conversation, inner.subquery("page"))
    query = (
        sa.select(
            found.id,
            found.last_message_at,
            found.unread_by_staff,
            found.awaiting_staff,
            found.closed_at.is_not(None),
            found.patient_id,
            Patient.first_name + " " + Patient.last_name,
            User.name,
        )
        .join(
            Patient, sa.and_(Patient.tenant_id == found.tenant_id, Patient.id == found.patient_id)
        )
        .join(User, sa.and_(User.tenant_id == found.tenant_id, User.id == found.practitioner_id))
        .order_by(found.last_message_at.desc(), found.id.desc())
    )
    rows = [Row(*r) for r in db.session.execute(query)]
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = cursor(rows[-1].last_message_at, rows[-1].id) if more else None
    return Page(rows, next_cursor)


def counters(user: User) -> tuple[int, int]:
    """(unread, unhandled) conversations: a practitioner's own, those of the practitioners
    a secretary works for, or the whole clinic's for admins and secretaries who answer for
    every practitioner."""
    c = Conversation
    scope = works_for(user)
    if user.role == Role.PRACTITIONER:
        mine = (c.practitioner_id == user.id,)
    elif scope is not None:
        mine = (c.practitioner_id.in_(sorted(scope)),)
    else:
        mine = ()
    unread = sa.select(sa.func.count()).select_from(c).where(c.unread_by_staff, *mine)
    unhandled = sa.select(sa.func.count()).select_from(c).where(c.awaiting_staff, *mine)
    row = db.session.execute(sa.select(unread.scalar_subquery(), unhandled.scalar_subquery()))
    return tuple(row.one())
