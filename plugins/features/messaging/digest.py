"""The weekly e-mail to a practitioner whose patients' requests wait: "4 requests from
patients wait for an answer", with a link to the inbox; never a name nor a word of content.

It goes when a practitioner has ``digest_threshold`` unhandled conversations or more (the
clinic's settings; ``digest`` turns it off), at most once in seven days. Two triggers:
a patient's message that brings a practitioner to the threshold (:func:`check`, in that
message's transaction), and ``relais messaging digest`` (:func:`send_digests`), which an
operator runs from cron (daily, say) for the requests that still wait a week later.

The once-a-week guard is one statement: an INSERT ... ON CONFLICT DO UPDATE whose update
applies only when the last e-mail is a week old, RETURNING the row it claimed. Two workers,
two commands or a command beside a request running at once claim it once.
"""

import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask_babel import force_locale, ngettext
from sqlalchemy.dialects import postgresql, sqlite

from core.plugin_api import (
    LANGUAGES,
    Role,
    User,
    db,
    external_url,
    plugin_setting,
    send,
    utcnow,
)
from plugins.features.messaging.models import Conversation, Digest

PLUGIN = "messaging"
EVERY = timedelta(days=7)


def _waiting(practitioner_id: uuid.UUID | None, threshold: int) -> list[tuple[User, int]]:
    """The active practitioners (or the one given) with ``threshold`` unhandled
    conversations or more, and how many: one query."""
    c = Conversation
    counts = (
        sa.select(c.practitioner_id, sa.func.count().label("waiting"))
        .where(c.awaiting_staff)
        .group_by(c.practitioner_id)
        .having(sa.func.count() >= threshold)
    )
    if practitioner_id is not None:
        counts = counts.where(c.practitioner_id == practitioner_id)
    counts = counts.subquery()
    query = (
        sa.select(User, counts.c.waiting)
        .join(counts, counts.c.practitioner_id == User.id)
        .where(User.role == Role.PRACTITIONER, User.active)
        .order_by(User.id)
    )
    return [(user, waiting) for user, waiting in db.session.execute(query)]


def _claim(tenant, practitioner_id: uuid.UUID) -> bool:
    """Take this week's e-mail for the practitioner: True for the one caller that did."""
    now = utcnow()
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Digest).values(
        tenant_id=tenant.id, practitioner_id=practitioner_id, sent_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "practitioner_id"],
        set_={"sent_at": now},
        where=Digest.sent_at <= now - EVERY,
    ).returning(Digest.practitioner_id)
    return db.session.execute(statement).first() is not None


def _language(tenant) -> str:
    wanted = tenant.default_language
    return wanted if wanted in LANGUAGES else "en"


def _send(tenant, practitioner: User, waiting: int) -> None:
    """The e-mail, in the clinic's language: a count and a link, nothing else."""
    written_in = _language(tenant)
    link = external_url("messaging.inbox_page", tenant=tenant.slug, show="unhandled")
    with force_locale(written_in):
        subject = ngettext(
            "%(num)d patient request waits at %(clinic)s",
            "%(num)d patient requests wait at %(clinic)s",
            waiting,
            clinic=tenant.name,
        )
        text = ngettext(
            "Hello %(name)s,\n\n%(num)d request from your patients waits for an answer in "
            "your inbox at %(clinic)s:\n%(link)s\n\nThis e-mail comes at most once a week, "
            "while requests wait.",
            "Hello %(name)s,\n\n%(num)d requests from your patients wait for an answer in "
            "your inbox at %(clinic)s:\n%(link)s\n\nThis e-mail comes at most once a week, "
            "while requests wait.",
            waiting,
            name=practitioner.name,
            clinic=tenant.name,
            link=link,
        )
    # The texts go in as variables, never as templates: a clinic's name is not Jinja.
    send(
        tenant,
        None,
        "transactional",
        {"text": "{{ text }}", "subject": "{{ subject }}"},
        {"text": text, "subject": subject},
        ("email",),
        address=practitioner.email,
        language=written_in,
    )


def send_digests(tenant, practitioner_id: uuid.UUID | None = None) -> int:
    """E-mail each practitioner of the clinic (or the one given) whose unhandled requests
    reached the threshold, unless they had one in the last seven days; in the caller's
    transaction (the e-mails leave once it commits). Returns how many were sent.
    """
    if not plugin_setting(tenant, PLUGIN, "digest"):
        return 0
    threshold = plugin_setting(tenant, PLUGIN, "digest_threshold")
    sent = 0
    for practitioner, waiting in _waiting(practitioner_id, threshold):
        if _claim(tenant, practitioner.id):
            _send(tenant, practitioner, waiting)
            sent += 1
    return sent


def check(tenant, conversation: Conversation) -> None:
    """After a patient's message: the e-mail, if it brought its practitioner to the
    threshold and none went this week."""
    send_digests(tenant, conversation.practitioner_id)
