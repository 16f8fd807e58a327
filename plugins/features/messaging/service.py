"""Messaging's domain functions: what patients and staff may write, and what it changes.

Routes (:mod:`.views`, :mod:`.staff_views`) parse and call these; they take plain values,
raise :class:`ValidationError` (naming the field) or :class:`NotFound` with a sentence the
user can act on, and write nothing when they refuse. The caller commits.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite

from core.plugin_api import (
    NotFound,
    Patient,
    Role,
    User,
    ValidationError,
    db,
    hooks_for,
    plugin_setting,
    record_audit,
    utcnow,
    works_for,
)
from plugins.features.messaging import digest, files, notify
from plugins.features.messaging.models import (
    MAX_AUTO_ANSWER,
    MAX_BODY,
    Allowed,
    Attachment,
    Author,
    Block,
    Conversation,
    Inbox,
    ReplyMode,
    ThreadMessage,
)

PLUGIN = "messaging"


# --- what a patient may do --------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """A practitioner a patient may write to, or the reason they may not."""

    practitioner: User
    refusal: str | None = None


def _upsert(model, tenant_id: uuid.UUID, row: dict, update: dict | None) -> None:
    """One atomic INSERT ... ON CONFLICT (two clicks at once make one row): ``update`` the
    row found, or leave it as it is when ``update`` is None."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).values(tenant_id=tenant_id, **row)
    keys = [c.name for c in model.__table__.primary_key.columns]
    if update is None:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    else:
        statement = statement.on_conflict_do_update(index_elements=keys, set_=update)
    db.session.execute(statement)


def _lock_patient(patient: Patient) -> None:
    """Serialise a patient's writes, so that two requests sent at once both see the rules."""
    db.session.execute(
        sa.select(Patient.id).where(Patient.id == patient.id).with_for_update()
    ).all()


def _inbox(practitioner_id: uuid.UUID) -> Inbox | None:
    return db.session.scalar(sa.select(Inbox).where(Inbox.practitioner_id == practitioner_id))


def _blocked(practitioner_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
    query = sa.select(Block.patient_id).where(
        Block.practitioner_id == practitioner_id, Block.patient_id == patient_id
    )
    return db.session.scalar(query) is not None


def _allowed(practitioner_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
    query = sa.select(Allowed.patient_id).where(
        Allowed.practitioner_id == practitioner_id, Allowed.patient_id == patient_id
    )
    return db.session.scalar(query) is not None


def allowed_by(patient: Patient) -> set[uuid.UUID]:
    """The practitioners who let ``patient`` write first whatever their follow-up."""
    query = sa.select(Allowed.practitioner_id).where(Allowed.patient_id == patient.id)
    return set(db.session.scalars(query))


def set_allowed(user: User, patient: Patient, practitioner_id, allowed: bool) -> None:
    """Let ``patient`` write first to the practitioner (or no longer), whatever the clinic's
    ``first_writers``; twice changes nothing. :raises ValidationError: on ``practitioner``
    when it is not one the user answers for."""
    practitioner = _acting_practitioner(user, practitioner_id)
    if user.role == Role.PRACTITIONER and practitioner.id != user.id:
        raise ValidationError(_("You can let patients write first to you only."), "practitioner")
    if allowed:
        row = {
            "practitioner_id": practitioner.id,
            "patient_id": patient.id,
            "allowed_by": user.id,
            "created_at": utcnow(),
        }
        _upsert(Allowed, user.tenant_id, row, None)
    else:
        db.session.execute(
            sa.delete(Allowed).where(
                Allowed.practitioner_id == practitioner.id, Allowed.patient_id == patient.id
            )
        )
    record_audit("messaging.allowed" if allowed else "messaging.disallowed", patient.id)


def refusal(tenant, patient: Patient, practitioner: User) -> str | None:
    """Why ``patient`` may not write a new request to ``practitioner`` now, in plain words,
    or None when they may."""
    if practitioner.id not in {p.id for p in patient.practitioners}:
        return _(
            "You can write only to a practitioner you are a patient of, and %(name)s is not "
            "one of yours. Call the clinic to make an appointment.",
            name=practitioner.name,
        )
    wanted = [a.strip() for a in (plugin_setting(tenant, PLUGIN, "first_writers") or "").split(",")]
    wanted = [a for a in wanted if a]
    followed = set(wanted) & set(patient.attributes or ())
    if wanted and not followed and not _allowed(practitioner.id, patient.id):
        return _(
            "%(name)s takes new requests only from patients with a follow-up at the clinic. "
            "Call the clinic if you need anything.",
            name=practitioner.name,
        )
    if _blocked(practitioner.id, patient.id):
        return _(
            "%(name)s no longer takes messages from you. Call the clinic if you need anything.",
            name=practitioner.name,
        )
    inbox = _inbox(practitioner.id)
    if inbox is not None and inbox.closed_at is not None:
        answer = inbox.auto_answer or ""
        return _("%(name)s's inbox is closed for now.", name=practitioner.name) + (
            f" {answer}" if answer else ""
        )
    if plugin_setting(tenant, PLUGIN, "one_request_a_day") and _answered_today(tenant, patient):
        return _(
            "You received an answer today: you can write a new request tomorrow. To go on "
            "with today's conversation, reply in it if it is still open."
        )
    return None


def _answered_today(tenant, patient: Patient) -> bool:
    zone = ZoneInfo(tenant.timezone)
    midnight = datetime.combine(utcnow().astimezone(zone).date(), time(0), zone)
    query = sa.select(Conversation.id).where(
        Conversation.patient_id == patient.id, Conversation.answered_at >= midnight
    )
    return db.session.scalar(query.limit(1)) is not None


def recipients(tenant, patient: Patient) -> list[Recipient]:
    """The patient's practitioners, each with the reason they may not write to them, if any."""
    return [
        Recipient(p, refusal(tenant, patient, p))
        for p in patient.practitioners
        if p.active and p.role == Role.PRACTITIONER
    ]


def _check_body(body: str | None) -> str:
    text = (body or "").strip()
    if not text:
        raise ValidationError(_("Write your message."), "body")
    if len(text) > MAX_BODY:
        raise ValidationError(
            _("Your message is too long: at most %(n)d characters.", n=MAX_BODY), "body"
        )
    return text


def _max_bytes(tenant) -> int:
    return int(plugin_setting(tenant, PLUGIN, "max_attachment_mb") * 1_000_000)


def _practitioner(practitioner_id, acting: User | None = None) -> User:
    """An active practitioner of the clinic; with ``acting``, one they act for (a secretary
    working for chosen practitioners acts for those only)."""
    try:
        wanted = uuid.UUID(str(practitioner_id))
    except ValueError:
        raise ValidationError(_("Choose a practitioner."), "practitioner") from None
    found = db.session.scalar(
        sa.select(User).where(User.id == wanted, User.role == Role.PRACTITIONER, User.active)
    )
    scope = works_for(acting) if acting is not None else None
    if found is None or (scope is not None and found.id not in scope):
        raise ValidationError(_("Choose a practitioner."), "practitioner")
    return found


def _add_message(
    conversation: Conversation,
    author: Author,
    body: str,
    attachments=(),
    user_id: uuid.UUID | None = None,
) -> ThreadMessage:
    message = ThreadMessage(
        conversation_id=conversation.id, author=author, body=body, author_user_id=user_id
    )
    db.session.add(message)
    db.session.flush()
    for filename, mime_type, data in attachments:
        db.session.add(
            Attachment(
                message_id=message.id,
                filename=filename,
                mime_type=mime_type,
                size=len(data),
                data=data,
            )
        )
    conversation.last_message_at = message.created_at
    return message


def start_request(tenant, patient: Patient, practitioner_id, body, uploads) -> Conversation:
    """A patient's new request to one of their practitioners.

    :param uploads: ``(filename, data)`` of each file sent.
    :raises ValidationError: on ``practitioner`` (not one of theirs, blocked, inbox closed,
        already answered today), ``body`` or ``attachments``; nothing is stored.
    """
    practitioner = _practitioner(practitioner_id)
    text = _check_body(body)
    attachments = files.check(uploads, _max_bytes(tenant))
    _lock_patient(patient)
    why = refusal(tenant, patient, practitioner)
    if why:
        raise ValidationError(why, "practitioner")
    conversation = Conversation(
        patient_id=patient.id,
        practitioner_id=practitioner.id,
        started_by=Author.PATIENT,
        reply_mode=ReplyMode.UNTIL_CLOSED,
        awaiting_staff=True,
        unread_by_staff=True,
    )
    db.session.add(conversation)
    db.session.flush()
    _add_message(conversation, Author.PATIENT, text, attachments)
    _announce(tenant, conversation, True)
    return conversation


def _announce(tenant, conversation: Conversation, new_request: bool) -> None:
    """A patient's message: plugins hear of it, and its practitioner may get the weekly
    e-mail of waiting requests."""
    db.session.flush()
    hooks_for(tenant).relais_messaging_received(
        tenant=tenant, conversation=conversation, new_request=new_request
    )
    digest.check(tenant, conversation)


def patient_conversations(patient: Patient) -> list[Conversation]:
    """The patient's conversations, newest first."""
    due = sa.exists().where(
        ThreadMessage.tenant_id == Conversation.tenant_id,
        ThreadMessage.conversation_id == Conversation.id,
        sa.or_(ThreadMessage.visible_at.is_(None), ThreadMessage.visible_at <= utcnow()),
    )
    query = (
        sa.select(Conversation)
        .where(Conversation.patient_id == patient.id, due)  # none only scheduled for later
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    )
    return list(db.session.scalars(query))


def unread_by_patient(patient: Patient) -> set[uuid.UUID]:
    """The patient's conversations holding a message from the clinic they have not read
    (one that is due: not one scheduled for later), in one query."""
    query = (
        sa.select(ThreadMessage.conversation_id)
        .join(
            Conversation,
            sa.and_(
                Conversation.tenant_id == ThreadMessage.tenant_id,
                Conversation.id == ThreadMessage.conversation_id,
            ),
        )
        .where(
            Conversation.patient_id == patient.id,
            ThreadMessage.author != Author.PATIENT,
            ThreadMessage.read_at.is_(None),
            ThreadMessage.deleted_at.is_(None),
            sa.or_(ThreadMessage.visible_at.is_(None), ThreadMessage.visible_at <= utcnow()),
        )
        .distinct()
    )
    return set(db.session.scalars(query))


def _conversation(conversation_id, patient: Patient | None = None) -> Conversation:
    try:
        wanted = uuid.UUID(str(conversation_id))
    except ValueError:
        wanted = None
    query = sa.select(Conversation).where(Conversation.id == wanted)
    if patient is not None:
        query = query.where(Conversation.patient_id == patient.id)
    found = db.session.scalar(query) if wanted else None
    if found is None:
        raise NotFound(_("No such conversation."))
    return found


def _staff_conversation(user: User, conversation_id) -> Conversation:
    """A conversation ``user`` may open: for a secretary working for chosen practitioners,
    only those practitioners' (another's is "no such conversation", as in another clinic)."""
    conversation = _conversation(conversation_id)
    scope = works_for(user)
    if scope is not None and conversation.practitioner_id not in scope:
        raise NotFound(_("No such conversation."))
    return conversation


def may_reply(conversation: Conversation, patient: Patient) -> str | None:
    """Why the patient may not write in this conversation, or None when they may."""
    if not conversation.is_open:
        return _("This conversation is closed. Write a new request if you need to.")
    if conversation.reply_mode == ReplyMode.NONE or (
        conversation.reply_mode == ReplyMode.ONCE and conversation.awaiting_staff
    ):
        return _("The clinic did not ask for a reply to this message.")
    if _blocked(conversation.practitioner_id, patient.id):
        return _("This practitioner no longer takes messages from you.")
    return None


@dataclass(frozen=True)
class Thread:
    conversation: Conversation
    messages: list[ThreadMessage]
    attachments: dict[uuid.UUID, list[Attachment]]
    practitioner: User
    patient: Patient


def _thread(conversation: Conversation, due_only: bool = False) -> Thread:
    query = (
        sa.select(ThreadMessage)
        .where(ThreadMessage.conversation_id == conversation.id)
        .order_by(ThreadMessage.created_at, ThreadMessage.id)
    )
    if due_only:  # the patient: not the messages scheduled for later
        query = query.where(
            sa.or_(ThreadMessage.visible_at.is_(None), ThreadMessage.visible_at <= utcnow())
        )
    messages = list(db.session.scalars(query))
    attachments: dict[uuid.UUID, list[Attachment]] = {}
    if messages:
        for a in db.session.scalars(
            sa.select(Attachment).where(Attachment.message_id.in_([m.id for m in messages]))
        ):
            attachments.setdefault(a.message_id, []).append(a)
    practitioner = db.session.scalar(sa.select(User).where(User.id == conversation.practitioner_id))
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == conversation.patient_id))
    return Thread(conversation, messages, attachments, practitioner, patient)


def read_as_patient(patient: Patient, conversation_id) -> Thread:
    """A patient's own conversation; the staff messages they had not read are read now (the
    ✓✓ staff see)."""
    conversation = _conversation(conversation_id, patient)
    thread = _thread(conversation, due_only=True)
    now = utcnow()
    for message in thread.messages:
        if message.author != Author.PATIENT and message.read_at is None:
            message.read_at = now
    return thread


def patient_reply(tenant, patient: Patient, conversation_id, body, uploads) -> ThreadMessage:
    """The patient writes in one of their conversations.

    :raises ValidationError: on ``body`` when the conversation takes no reply (closed, no
        reply asked for, blocked), or on ``body``/``attachments`` when they are not right.
    """
    conversation = _conversation(conversation_id, patient)
    text = _check_body(body)
    attachments = files.check(uploads, _max_bytes(tenant))
    _lock_patient(patient)
    db.session.refresh(conversation)
    why = may_reply(conversation, patient)
    if why:
        raise ValidationError(why, "body")
    message = _add_message(conversation, Author.PATIENT, text, attachments)
    conversation.awaiting_staff = conversation.unread_by_staff = True
    _announce(tenant, conversation, False)
    return message


def attachment_for_patient(patient: Patient, conversation_id, attachment_id) -> Attachment:
    """A file of the patient's conversation, from a message they can see (not one
    scheduled for later)."""
    conversation = _conversation(conversation_id, patient)
    return _attachment(conversation, attachment_id, due_only=True)


def _attachment(conversation: Conversation, attachment_id, due_only: bool = False) -> Attachment:
    try:
        wanted = uuid.UUID(str(attachment_id))
    except ValueError:
        wanted = None
    found = None
    if wanted:
        found = db.session.scalar(
            sa.select(Attachment)
            .join(
                ThreadMessage,
                sa.and_(
                    ThreadMessage.tenant_id == Attachment.tenant_id,
                    ThreadMessage.id == Attachment.message_id,
                ),
            )
            .where(Attachment.id == wanted, ThreadMessage.conversation_id == conversation.id)
            .where(
                sa.or_(ThreadMessage.visible_at.is_(None), ThreadMessage.visible_at <= utcnow())
                if due_only
                else sa.true()
            )
            .options(sa.orm.undefer(Attachment.data))
        )
    if found is None:
        raise NotFound(_("No such attachment."))
    return found


# --- what staff do ----------------------------------------------------------------------------


def read_as_staff(user: User, conversation_id) -> Thread:
    """A conversation as staff open it: the read is audited; the patient's messages are read
    (never shown to the patient)."""
    conversation = _staff_conversation(user, conversation_id)
    thread = _thread(conversation)
    record_audit("messaging.read", conversation.id)
    now = utcnow()
    for message in thread.messages:
        if message.author == Author.PATIENT and message.read_at is None:
            message.read_at = now
    conversation.unread_by_staff = False
    return thread


def attachment_for_staff(user: User, conversation_id, attachment_id) -> Attachment:
    """An attachment of a conversation, its read audited."""
    conversation = _staff_conversation(user, conversation_id)
    found = _attachment(conversation, attachment_id)
    record_audit("messaging.attachment_read", found.id)
    return found


def _reply_mode(value) -> ReplyMode:
    try:
        return ReplyMode(value or ReplyMode.UNTIL_CLOSED)
    except ValueError:
        raise ValidationError(_("Choose whether the patient may reply."), "reply_mode") from None


def scheduled_time(tenant, text: str | None) -> datetime | None:
    """When a staff message is scheduled for: ``YYYY-MM-DDTHH:MM`` on the clinic's clock (a
    browser's date-time field), as aware UTC; None for "now".

    :raises ValidationError: on ``send_at`` when it is not a time to come within a year.
    """
    if not (text or "").strip():
        return None
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            _("Give a date and time, e.g. 2026-12-24 09:00."), "send_at"
        ) from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(tenant.timezone))
    when = local.astimezone(UTC)
    if not utcnow() < when <= utcnow() + timedelta(days=365):
        raise ValidationError(_("Choose a time to come, within a year."), "send_at")
    return when


def staff_reply(
    tenant, user: User, conversation_id, body, reply_mode=None, send_at=None, uploads=()
) -> ThreadMessage:
    """A staff member answers, now or at ``send_at`` (see :func:`scheduled_time`), with
    files checked and stored as the patient's are; the patient is told by their best
    channel then (never the content).

    :param uploads: ``(filename, data)`` of each file sent.
    :raises ValidationError: on ``body``, ``attachments``, ``reply_mode`` or ``send_at``.
    """
    conversation = _staff_conversation(user, conversation_id)
    text = _check_body(body)
    attachments = files.check(uploads, _max_bytes(tenant))
    mode = _reply_mode(reply_mode)
    when = scheduled_time(tenant, send_at)
    message = _add_message(conversation, Author.STAFF, text, attachments, user_id=user.id)
    message.visible_at = when
    conversation.reply_mode = mode
    conversation.answered_at = when or message.created_at
    conversation.closed_at = conversation.closed_by = None  # an answer opens it again
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == conversation.patient_id))
    notify.new_message(tenant, patient, not_before=when)
    return message


def start_by_staff(
    tenant, user: User, patient: Patient, practitioner_id, body, reply_mode, appointment_id=None
):
    """A staff member writes first to a patient, from the patient's file or from one of
    their appointments (``appointment_id``, kept for the templates of the conversation).

    :raises ValidationError: on ``practitioner``, ``body`` or ``reply_mode``.
    """
    if practitioner_id is None and user.role == Role.PRACTITIONER:
        practitioner_id = user.id
    practitioner = _practitioner(practitioner_id, user)
    text = _check_body(body)
    mode = _reply_mode(reply_mode)
    conversation = Conversation(
        patient_id=patient.id,
        practitioner_id=practitioner.id,
        started_by=Author.STAFF,
        reply_mode=mode,
        about_appointment_id=_about(tenant, patient, appointment_id),
    )
    db.session.add(conversation)
    db.session.flush()
    message = _add_message(conversation, Author.STAFF, text, user_id=user.id)
    conversation.answered_at = message.created_at
    notify.new_message(tenant, patient)
    return conversation


def _about(tenant, patient: Patient, appointment_id) -> uuid.UUID | None:
    """The id of the patient's appointment a conversation is started from, if it is one of
    theirs (asked to the appointments feature)."""
    if not appointment_id:
        return None
    found = hooks_for(tenant).relais_messaging_appointment(
        tenant=tenant, patient=patient, appointment_id=appointment_id
    )
    return found.id if found is not None else None


def mark_handled(user: User, conversation_id) -> Conversation:
    """Mark a conversation handled: it leaves the unhandled ones, and is closed."""
    conversation = _staff_conversation(user, conversation_id)
    conversation.awaiting_staff = conversation.unread_by_staff = False
    conversation.closed_at = utcnow()
    conversation.closed_by = user.id
    record_audit("messaging.handled", conversation.id)
    return conversation


def _acting_practitioner(user: User, practitioner_id) -> User:
    """The practitioner whose inbox is meant: one's own, or the one chosen by a secretary or
    an admin."""
    if user.role == Role.PRACTITIONER and not practitioner_id:
        return user
    return _practitioner(practitioner_id, user)


def inbox_state(practitioner_id: uuid.UUID) -> Inbox | None:
    return _inbox(practitioner_id)


def close_inbox(user: User, practitioner_id, auto_answer: str | None) -> Inbox:
    """Close a practitioner's inbox (holidays): patients are told ``auto_answer`` instead
    of writing.

    :raises ValidationError: on ``auto_answer`` (empty, too long) or ``practitioner``.
    """
    practitioner = _acting_practitioner(user, practitioner_id)
    text = (auto_answer or "").strip()
    if not text:
        raise ValidationError(_("Write the answer patients will read."), "auto_answer")
    if len(text) > MAX_AUTO_ANSWER:
        raise ValidationError(_("At most %(n)d characters.", n=MAX_AUTO_ANSWER), "auto_answer")
    values = {"closed_at": utcnow(), "auto_answer": text}
    _upsert(Inbox, user.tenant_id, {"practitioner_id": practitioner.id, **values}, values)
    record_audit("messaging.inbox_closed", practitioner.id)
    return _inbox(practitioner.id)


def reopen_inbox(user: User, practitioner_id) -> None:
    practitioner = _acting_practitioner(user, practitioner_id)
    inbox = _inbox(practitioner.id)
    if inbox is not None:
        inbox.closed_at = None
    record_audit("messaging.inbox_opened", practitioner.id)


def set_blocked(user: User, conversation_id, blocked: bool) -> Conversation:
    """Block (or unblock) the conversation's patient from writing to its practitioner;
    online booking is not concerned. Blocking twice changes nothing."""
    conversation = _staff_conversation(user, conversation_id)
    where = (
        Block.practitioner_id == conversation.practitioner_id,
        Block.patient_id == conversation.patient_id,
    )
    if blocked:
        row = {
            "practitioner_id": conversation.practitioner_id,
            "patient_id": conversation.patient_id,
            "blocked_by": user.id,
            "created_at": utcnow(),
        }
        _upsert(Block, user.tenant_id, row, None)
    else:
        db.session.execute(sa.delete(Block).where(*where))
    record_audit("messaging.blocked" if blocked else "messaging.unblocked", conversation.patient_id)
    return conversation


def is_blocked(conversation: Conversation) -> bool:
    return _blocked(conversation.practitioner_id, conversation.patient_id)


def delete_messages(user: User, conversation_id, thread_message_id=None) -> Conversation:
    """Delete one message of a conversation (``thread_message_id``), or all of them: their
    text and files are purged at once; the thread shows where they were, and the audit log
    who deleted them. A deleted conversation is closed.

    :raises NotFound: for a message that is not the conversation's.
    """
    conversation = _staff_conversation(user, conversation_id)
    query = sa.select(ThreadMessage).where(ThreadMessage.conversation_id == conversation.id)
    if thread_message_id is not None:
        try:
            wanted = uuid.UUID(str(thread_message_id))
        except ValueError:
            raise NotFound(_("No such message.")) from None
        query = query.where(ThreadMessage.id == wanted)
    messages = list(db.session.scalars(query))
    if not messages:
        raise NotFound(_("No such message."))
    now = utcnow()
    ids = [m.id for m in messages]
    db.session.execute(sa.delete(Attachment).where(Attachment.message_id.in_(ids)))
    for message in messages:
        message.body, message.deleted_at = "", message.deleted_at or now
    if thread_message_id is None:
        conversation.closed_at, conversation.closed_by = now, user.id
        conversation.awaiting_staff = conversation.unread_by_staff = False
        record_audit("messaging.conversation_deleted", conversation.id)
    else:
        record_audit("messaging.message_deleted", messages[0].id)
    return conversation


def after_appointment(tenant, appointment) -> Conversation | None:
    """The clinic's follow-up message after an appointment of a chosen type is done ("how
    are you after your vaccination?"), from its practitioner, shown and told
    ``after_appointment_hours`` after its end; the patient may reply once. One per
    appointment, however often it is marked done.
    """
    types = [
        t.strip()
        for t in (plugin_setting(tenant, PLUGIN, "after_appointment_types") or "").split(",")
    ]
    if appointment.type not in [t for t in types if t]:
        return None
    taken = sa.select(Conversation.id).where(Conversation.appointment_id == appointment.id)
    if db.session.scalar(taken) is not None:
        return None
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == appointment.patient_id))
    hours = plugin_setting(tenant, PLUGIN, "after_appointment_hours")
    when = max(appointment.ends_at, utcnow()) + timedelta(hours=hours)
    text = plugin_setting(tenant, PLUGIN, "after_appointment_text") or ""
    if not text:
        with force_locale(notify.language_of(patient)):
            text = _("How are you after your appointment? You can answer this message.")
    conversation = Conversation(
        patient_id=patient.id,
        practitioner_id=appointment.practitioner_id,
        started_by=Author.STAFF,
        reply_mode=ReplyMode.ONCE,
        appointment_id=appointment.id,
    )
    db.session.add(conversation)
    db.session.flush()
    message = _add_message(conversation, Author.AUTO, text)
    message.visible_at = conversation.answered_at = when
    notify.new_message(tenant, patient, not_before=when)
    return conversation
