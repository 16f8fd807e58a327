"""Writing messages to the outbox, in the transaction of the change that causes them."""

import base64
import inspect
import json
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.clinic import consent
from core.clinic.models import Patient
from core.db import db, new_id, utcnow
from core.delivery import lifecycle, queues, routing, templates
from core.delivery.models import Message, MessageStatus
from core.errors import ValidationError
from core.i18n import Phrase, phrase_country, phrases_to_json, render_phrases
from core.plugins import enabled_plugins, hooks_for, host
from core.regulation import HEALTH_VARIABLES, Verdict, is_transactional
from core.vocabulary import CHANNELS, PURPOSES


def send(
    tenant,
    patient: Patient | None,
    purpose: str,
    template: str | dict[str, str],
    variables: dict[str, Any] | None = None,
    channels: list[str] | tuple[str, ...] = ("sms",),
    not_before: datetime | None = None,
    expires_at: datetime | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    confidential: bool = False,
    address: str | None = None,
    language: str | None = None,
    api_key=None,
) -> Message:
    """Put a message to ``patient`` in the outbox; it leaves after the caller commits.

    A code to a phone number no patient record holds yet (a sign-up, a staff member's phone)
    goes with ``patient=None`` to ``address`` (E.164), written in ``language``; only
    transactional purposes may (no consent can exist without a patient).

    :param template: a sandboxed Jinja text, or ``{"text", "subject", "html"}`` templates.
    :param channels: the channel plan, tried in order (fallback on the next one).
    :param attachments: ``(filename, mime type, data)`` for channels that carry files
        (e-mail), e.g. an .ics invitation; stored encrypted with the content.
    :param confidential: the text holds a secret for the patient alone (an access link, a
        code): staff pages never show it.
    :param api_key: the API key writing it (its id and kind are recorded with it: a test
        key's messages never leave).
    :raises ValidationError: naming the argument that is not acceptable.
    """
    now = utcnow()
    message = _draft(
        tenant,
        now,
        patient=patient,
        purpose=purpose,
        template=template,
        variables=variables,
        channels=channels,
        not_before=not_before,
        expires_at=expires_at,
        attachments=attachments,
        confidential=confidential,
        address=address,
        language=language,
    )
    if api_key is not None:
        message.api_key_id, message.key_kind = api_key.id, api_key.kind
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):  # the API's words
        status = _apply_verdict(message, _judging(tenant)(patient, message), now)
    message.content.pop("discreet", None)  # judged: the health details stay once, or not at all
    db.session.add(message)
    lifecycle.start(message, status, message.verdict_reason, now)
    if status == MessageStatus.PENDING:
        message.enqueued_at = now  # pushed right after commit; the sweeper checks it got there
        queues.enqueue_after_commit(message)
    return message


# What a draft of send_many may carry: send's own arguments, and the caller's reference.
SEND_ARGUMENTS = (frozenset(inspect.signature(send).parameters) - {"tenant", "api_key"}) | {
    "reference"
}
MANY_CHUNK = 1000  # messages per multi-row INSERT


def send_many(
    tenant,
    drafts: Iterable[dict[str, Any]],
    api_key_id: uuid.UUID | None = None,
    key_kind: str | None = None,
) -> list[Message | ValidationError]:
    """Put many messages in the outbox at once: the bulk path of :func:`send`.

    Each draft is a dict of :func:`send`'s arguments (``patient``, ``purpose``,
    ``template``, ``variables``, ``channels``, ``not_before``...) and may carry a
    ``reference``: the caller's own name for the message, unique per clinic and
    ``api_key_id``. A draft whose reference is already in the outbox is not written again:
    its answer is the message written the first time, so a batch sent again creates nothing
    twice. ``key_kind`` is that key's kind, recorded with each message (a test key's never
    leave).

    Each message is judged by the regulation plugins as :func:`send` judges it, with what
    they read (consents, settings, senders) read once for the whole batch; the messages and
    their first events are written in a few multi-row INSERTs; the due ones are queued after
    the caller commits. A draft that is not acceptable is not written, and does not stop the
    others.

    :return: for each draft, in order, its :class:`Message` (status and verdict set; not
        attached to the session) or the :class:`ValidationError` that refused it.
    """
    drafts = list(drafts)
    results: list[Message | ValidationError | None] = [None] * len(drafts)
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        patients = [d.get("patient") for d in drafts if d.get("patient") is not None]
        with consent.preloaded(patients):
            for start in range(0, len(drafts), MANY_CHUNK):
                chunk = range(start, min(start + MANY_CHUNK, len(drafts)))
                _send_chunk(tenant, drafts, chunk, (api_key_id, key_kind), results)
    return results  # type: ignore[return-value]


def send_in_parts(
    tenant,
    drafts: Iterable[dict[str, Any]],
    api_key_id: uuid.UUID | None = None,
    part: int = MANY_CHUNK,
) -> list[Message | ValidationError]:
    """:func:`send_many` for a fan-out too large for one transaction (a campaign to 500,000
    patients): the drafts in transactions of ``part``, each committed before the next part
    is written, so each part's due messages are queued as soon as it is in the database and
    a crash loses at most the part being written (nothing of it is half-written). Changes
    the caller made before commit with the first part.

    Give drafts a ``reference`` to make a fan-out that stopped midway safe to start again:
    the parts already written are not written twice.

    :return: as :func:`send_many`, for every draft in order.
    """
    drafts = list(drafts)
    results: list[Message | ValidationError] = []
    for start in range(0, len(drafts), part):
        results += send_many(tenant, drafts[start : start + part], api_key_id)
        db.session.commit()  # the part's due messages are pushed to Redis right after this
    return results


def _send_chunk(tenant, drafts, chunk, key, results) -> None:
    now = utcnow()
    api_key_id, key_kind = key
    referenced = {i: drafts[i]["reference"] for i in chunk if drafts[i].get("reference")}
    known = _by_reference(tenant, api_key_id, set(referenced.values()))
    seen: set[str] = set()
    new: list[tuple[int, Message, MessageStatus]] = []
    senders_of: dict = {}
    judged = _judging(tenant)
    reasons: dict = {}  # the batch's verdicts share a few reasons: each rendered once
    renders: dict = {}  # and drafts may share their template and variables
    for i in chunk:
        draft = drafts[i]
        reference = referenced.get(i)
        if reference in known:
            results[i] = known[reference]
            continue
        try:
            unknown = set(draft) - SEND_ARGUMENTS
            if unknown:
                raise TypeError(f"send_many: unknown argument {sorted(unknown)[0]!r}")
            if reference is not None:
                if reference in seen:
                    raise ValidationError(_("This reference is used twice."), "reference")
                seen.add(reference)
            fields = {k: v for k, v in draft.items() if k != "reference"}
            message = _draft(tenant, now, **fields, renders=renders)
            # Straight into its state, as lifecycle.new_message puts its values: written
            # whole by start_many, with nothing for the ORM to track.
            message.__dict__.update(api_key_id=api_key_id, reference=reference, key_kind=key_kind)
            key = (tuple(message.channels), message.purpose)
            if key not in senders_of:
                senders_of[key] = senders(tenant, message)
            verdict = judged(fields.get("patient"), message, senders_of[key])
            status = _apply_verdict(message, verdict, now, reasons)
        except ValidationError as exc:
            results[i] = exc
            continue
        message.content.pop("discreet", None)
        if status == MessageStatus.PENDING:
            message.__dict__["enqueued_at"] = now  # pushed after commit; the sweeper checks it
        new.append((i, message, status))
    if not new:
        return
    written = lifecycle.start_many([(m, s) for _i, m, s in new], now)
    lost = [(i, m) for i, m, _s in new if m.id not in written]  # a concurrent same reference
    if lost:
        first = _by_reference(tenant, api_key_id, {m.reference for _i, m in lost})
        for i, message in lost:
            results[i] = first.get(message.reference) or ValidationError(
                _("This reference is used twice."), "reference"
            )
    for i, message, status in new:
        if message.id not in written:
            continue
        if status == MessageStatus.PENDING:
            queues.enqueue_after_commit(message)
        results[i] = message


def _by_reference(tenant, api_key_id, references: set[str]) -> dict[str, Message]:
    """The messages of the clinic and key already written with these references."""
    if not references:
        return {}
    found = db.session.scalars(
        sa.select(Message).where(
            Message.tenant_id == tenant.id,
            Message.api_key_id.is_(None)
            if api_key_id is None
            else Message.api_key_id == api_key_id,
            Message.reference.in_(references),
        )
    )
    return {m.reference: m for m in found}


def _draft(
    tenant,
    now: datetime,
    patient: Patient | None,
    purpose: str,
    template: str | dict[str, str],
    variables: dict[str, Any] | None = None,
    channels: list[str] | tuple[str, ...] = ("sms",),
    not_before: datetime | None = None,
    expires_at: datetime | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    confidential: bool = False,
    address: str | None = None,
    language: str | None = None,
    *,
    renders: dict | None = None,
) -> Message:
    """A message checked and rendered, not judged nor written yet (``send``'s first half).

    ``renders``: a batch's contents already rendered (see :func:`_content`).
    """
    if purpose not in PURPOSES:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(PURPOSES)), "purpose")
    plan = list(channels)
    if not plan or any(c not in CHANNELS for c in plan) or len(set(plan)) != len(plan):
        raise ValidationError(_("Choose channels among: %(v)s.", v=", ".join(CHANNELS)), "channels")
    if patient is None and not (address and is_transactional(purpose)):
        raise ValidationError(_("A message needs a patient."), "patient")
    plan = preferred_plan(patient, plan) if patient is not None else plan
    if expires_at is not None and expires_at <= now:
        raise ValidationError(_("The expiry must be in the future."), "expires_at")
    content = _content(template, variables, renders)
    if confidential:
        content["confidential"] = True
    if patient is None:
        content["language"] = language or current_app.config["BABEL_DEFAULT_LOCALE"]
    if attachments:
        content["attachments"] = [
            {"filename": name, "mime_type": mime, "data": base64.b64encode(data).decode()}
            for name, mime, data in attachments
        ]
    return lifecycle.new_message(
        id=new_id(),
        tenant_id=tenant.id,
        patient_id=patient.id if patient is not None else None,
        address=address if patient is None else None,
        purpose=purpose,
        channels=plan,
        content=content,
        not_before=not_before,
        expires_at=expires_at,
        exhausted=[],
    )


def _content(template, variables: dict[str, Any] | None, renders: dict | None) -> dict:
    """The rendered templates, with their text without health details (``discreet``) when
    the variables hold some. ``renders`` keeps them by template and variables objects: the
    drafts of a batch that share both (an appointment's reminders) are rendered once."""
    key = (id(template), id(variables) if variables else None)
    if renders is not None and key in renders:
        return dict(renders[key])  # a copy: the caller adds to it
    variables = variables or {}
    content = render(template, variables)
    if any(variables.get(name) for name in HEALTH_VARIABLES):
        blank = {**variables, **dict.fromkeys(HEALTH_VARIABLES, "")}
        content["discreet"] = render(template, blank)["text"]
    if renders is not None:
        renders[key] = dict(content)
    return content


def trial(
    tenant, patient: Patient, purpose: str, template, variables=None, channels=("sms",)
) -> tuple[dict[str, str], Verdict]:
    """What :func:`send` would write, without writing anything: the rendered content (as the
    regulation plugins amended it: a STOP mention added...) and their verdict. For previews,
    and to check a campaign against the country's rules before it starts.

    :raises ValidationError: as :func:`send` does, naming the argument.
    """
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        message = _draft(tenant, utcnow(), patient, purpose, template, variables, channels)
        verdict = _judging(tenant)(patient, message)
    message.content.pop("discreet", None)
    return message.content, verdict


def preferred_plan(patient: Patient, plan: list[str]) -> list[str]:
    """Put the patient's preferred channel first in ``plan``.

    A patient who asked for voice (accessibility: they cannot read a screen) is called for
    what would have gone by SMS; otherwise a preference only reorders the plan.
    """
    preferred = patient.preferred_channel
    if preferred == "voice" and "voice" not in plan and "sms" in plan:
        plan = [*plan, "voice"]
    if preferred in plan:
        plan = [preferred, *(c for c in plan if c != preferred)]
    return plan


def render(template: str | dict[str, str], variables: dict[str, Any]) -> dict[str, str]:
    """Render a message's templates once, in a bounded sandbox (:mod:`.templates`).

    :raises ValidationError: on ``template`` for any template that cannot be rendered:
        too long, too costly, or failing (a syntax error, a division by zero...).
    """
    parts = {"text": template} if isinstance(template, str) else template
    if (
        not isinstance(parts, dict)
        or not isinstance(parts.get("text"), str)
        or not parts["text"].strip()
    ):
        raise ValidationError(_("A message needs a text."), "template")
    try:
        return {
            name: templates.render(source, variables, html=name == "html")
            for name, source in parts.items()
            if name in ("text", "subject", "html") and source
        }
    except templates.TemplateTooLong as exc:
        if exc.what == "source":
            message = _("A template is at most %(n)d characters long.", n=exc.limit)
        else:
            message = _("The message would be longer than %(n)d characters.", n=exc.limit)
        raise ValidationError(message, "template") from exc
    except templates.TooCostly as exc:
        raise ValidationError(_("This template does too much work."), "template") from exc
    except Exception as exc:  # noqa: BLE001 (whatever a user's template raises is a refusal)
        raise ValidationError(
            _("The template cannot be rendered: %(e)s", e=str(exc) or type(exc).__name__),
            "template",
        ) from exc


def judge(tenant, patient: Patient, message: Message) -> Verdict:
    """Ask the regulation plugins of the tenant's country; the strictest verdict wins.

    Each plugin sees the text as the ones before it amended it. Without any regulation
    plugin enabled for the country, non-essential messages are denied (fail closed).
    Reasons are written in the deployment's default language, whoever caused the message:
    practice software reads them, and they read the same on every page.
    """
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        return _judging(tenant)(patient, message)


def _judging(tenant):
    """A judge of the clinic's messages, ``judged(patient, message, known_senders=None)``:
    which plugins are enabled, and which regulate, asked once (a batch judges a thousand
    messages with the same ones). ``known_senders``: :func:`senders` of the message, if
    already known (a batch's messages share a few)."""
    regulated = any(host().info[name].kind == "regulation" for name in enabled_plugins(tenant))
    hooks = hooks_for(tenant)

    def judged(patient: Patient, message: Message, known_senders=None) -> Verdict:
        if not regulated and not is_transactional(message.purpose):
            why = _l(
                "no regulation plugin is enabled for %(country)s: only transactional messages "
                "can be sent"
            )
            return Verdict(
                "deny",
                reasons=(Phrase(why, country=phrase_country(tenant.country_code)),),
                rule="no_regulation",
            )
        verdicts = []
        answers = hooks.each(
            "relais_judge_message",
            tenant=tenant,
            patient=patient,
            message=message,
            senders=senders(tenant, message) if known_senders is None else known_senders,
        )
        for plugin, verdict in answers:
            if verdict is None:
                continue
            verdicts.append(replace(verdict, plugin=plugin))
            if verdict.action != "deny":  # a deferral may amend too (a STOP mention added)
                _amend(message, verdict)
        return Verdict.strictest(verdicts)

    return judged


def senders(tenant, message: Message) -> dict[str, list[tuple[str, str | None]]]:
    """Who the message would come from: for each channel of its plan, ``(provider, sender)``
    of each route that may carry it, for its purpose (the facts regulations judge senders
    by, so that they need not build providers themselves)."""
    return {
        channel: routing.senders(tenant, channel, message.purpose)
        for channel in message.channels or ()
    }


def _amend(message: Message, verdict: Verdict) -> None:
    if verdict.text:
        message.content = {**message.content, "text": verdict.text}
    if verdict.channels is not None:
        message.channels = [c for c in message.channels if c in verdict.channels]


def _apply_verdict(
    message: Message, verdict: Verdict, now: datetime, rendered: dict[str, str] | None = None
) -> MessageStatus:
    """Record the verdict with the message; return the status it enters the outbox with.

    Called in the deployment's default locale: the reason is the API's words.
    ``rendered``: reasons already rendered, by their phrases (a batch's).
    """
    message.verdict = verdict.action
    if verdict.reasons:
        message.verdict_phrases = phrases = phrases_to_json(verdict.reasons)
        key = json.dumps(phrases, sort_keys=True, default=str)
        rendered = {} if rendered is None else rendered
        if key not in rendered:
            rendered[key] = render_phrases(phrases)[:200]
        message.verdict_reason = rendered[key]
    else:
        message.verdict_reason = (verdict.reason or "")[:200] or None
    message.verdict_rule, message.verdict_plugin = verdict.rule, verdict.plugin
    if verdict.action == "deny":
        return MessageStatus.DENIED
    if not message.channels:  # amendments took every channel away: nothing can carry it
        return MessageStatus.DENIED
    due = message.not_before or now
    if verdict.action == "defer" and verdict.until and verdict.until > due:
        due = message.verdict_until = verdict.until
    message.next_attempt_at = due
    return MessageStatus.SCHEDULED if due > now else MessageStatus.PENDING


def cancel(message: Message, reason: str) -> bool:
    """Cancel a message that has not left yet (a cancelled appointment's reminders).

    Returns False when it is too late: being sent, sent, or already final.
    """
    return lifecycle.cancel(message, reason)
