"""Campaigns' domain: save a draft, check and start it, write its recipients chunk by chunk
on the ``bulk`` queue, pause, resume, cancel, and the figures.

How a campaign of 500,000 leaves without holding 500,000 of anything: starting it queues one
*plan* job, which asks the database for every ``CHUNK``-th patient id of the segment (one
index scan) and stores the chunks, ``(after_id, last_id]``; one job per chunk then selects its
patients by keyset, claims them with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING
RETURNING`` into the recipient rows, writes their messages with ``send_many`` (judged by the
country's rules: consent, STOP mention, quiet hours), records each recipient's message and
marks the chunk done, all in one transaction. A chunk run twice (two workers, a job run
again after a killed worker) claims nobody the second time: nobody is sent twice. Pausing
stops the chunks not started; resuming queues them again.
"""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased, defer

from core.plugin_api import (
    LANGUAGES,
    Message,
    MessageStatus,
    NotFound,
    Patient,
    Tenant,
    ValidationError,
    cancel_message,
    channel_preview,
    db,
    enabled_plugins,
    for_sending,
    plugin_setting,
    record_audit,
    render_message,
    run_later,
    send_many,
    sms_segments,
    template_names,
    tenant_scope,
    trial_message,
    update_many,
    utcnow,
)
from plugins.features.campaigns import segments
from plugins.features.campaigns.models import Campaign, CampaignChunk, CampaignRecipient

PLUGIN = "campaigns"
VARIABLES = ("patient", "last_name", "clinic")
JOB = "plugins.features.campaigns.service:"
MAX_TEXT = 1000
# A plan or chunk job not done this long after it was queued (or due) was lost: the sweep
# queues it again. As long as RQ lets a job run (``job_timeout``), so a job still running is
# not doubled; a chunk being written is locked, and skipped, anyway.
LEASE = timedelta(minutes=10)
BATCH = 500  # jobs queued again per sweep, at most

# What a campaign's messages became, as the page and the CSV name them.
BUCKETS = ("queued", "deferred", "sent", "delivered", "failed", "refused", "cancelled")
_BUCKET_OF = {
    MessageStatus.PENDING: "queued",
    MessageStatus.SENDING: "queued",
    MessageStatus.SCHEDULED: "queued",
    MessageStatus.SENT: "sent",
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.UNDELIVERED: "failed",
    MessageStatus.FAILED: "failed",
    MessageStatus.EXPIRED: "failed",
    MessageStatus.DENIED: "refused",
    MessageStatus.CANCELLED: "cancelled",
}


# --- drafts -----------------------------------------------------------------------------------


def _text(data, name: str, limit: int) -> str:
    value = (data.get(name) or "").strip()
    if len(value) > limit:
        raise ValidationError(_("At most %(n)d characters.", n=limit), name)
    return value


def check_template(text: str, field: str) -> None:
    """The text renders with the campaigns' variables and uses no other.

    :raises ValidationError: on ``field``, naming an unknown variable.
    """
    unknown = sorted(template_names(text) - set(VARIABLES))
    if unknown:
        raise ValidationError(
            ngettext(
                "Unknown variable: %(names)s. Use one of: %(known)s.",
                "Unknown variables: %(names)s. Use one of: %(known)s.",
                len(unknown),
                names=", ".join(f"{{{{ {n} }}}}" for n in unknown),
                known=", ".join(f"{{{{ {n} }}}}" for n in VARIABLES),
            ),
            field,
        )
    try:
        render_message(text, sample_variables())
    except ValidationError as exc:
        raise ValidationError(exc.message, field) from None


def sample_variables(tenant=None) -> dict:
    return {"patient": "Jeanne", "last_name": "Durand", "clinic": tenant.name if tenant else ""}


def _start_at(tenant, data) -> datetime | None:
    """``start_at``: a time with its offset (API, CLI) or a local time of the clinic (the
    form's datetime-local); empty for "when started"."""
    text = (data.get("start_at") or "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            _("Give a date and time, e.g. 2026-10-01 09:00."), "start_at"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tenant.timezone))
    when = when.astimezone(UTC)
    if when <= utcnow():
        raise ValidationError(_("The start must be in the future."), "start_at")
    return when


def parse_draft(tenant, data) -> dict:
    """A draft's fields from form or JSON data, checked for ``tenant`` (its time zone, its
    practitioners), nothing stored.

    :raises ValidationError: naming the field.
    """
    name = _text(data, "name", 200)
    if not name:
        raise ValidationError(_("Give the campaign a name."), "name")
    channels = segments._list(data, "channels")
    offered = segments.offered(tenant)
    if not channels or any(c not in offered for c in channels):
        raise ValidationError(_("Choose channels among: %(v)s.", v=", ".join(offered)), "channels")
    language = data.get("default_language") or ""
    if language not in LANGUAGES:
        raise ValidationError(
            _("Choose one of: %(v)s.", v=", ".join(LANGUAGES)), "default_language"
        )
    templates = {}
    for lang in LANGUAGES:
        text = _text(data, f"template_{lang}", MAX_TEXT)
        if text:
            check_template(text, f"template_{lang}")
            templates[lang] = text
    if language not in templates:
        raise ValidationError(_("Write the text in the default language."), f"template_{language}")
    segment_data = data["segment"] if isinstance(data.get("segment"), dict) else data
    return {
        "name": name,
        "channels": [c for c in segments.PLAN_ORDER if c in channels],
        "default_language": language,
        "templates": templates,
        "segment": segments.parse(segment_data).to_json(),
        "start_at": _start_at(tenant, data),
        "rate": segments._number(data, "rate", 1, 100_000),
    }


def save(tenant, data, campaign: Campaign | None = None, by: str | None = None) -> Campaign:
    """Create (``campaign`` None) or change a draft from form or JSON data.

    :raises ValidationError: naming the field; nothing is changed.
    """
    if campaign is not None and campaign.state != "draft":
        raise ValidationError(_("Only a draft can be changed."), "state")
    fields = parse_draft(tenant, data)
    campaign = campaign or Campaign(state="draft", created_by=by)
    for name, value in fields.items():
        setattr(campaign, name, value)
    db.session.add(campaign)
    db.session.flush()
    return campaign


def find(campaign_id) -> Campaign:
    """A campaign of the current clinic. :raises NotFound."""
    try:
        wanted = uuid.UUID(str(campaign_id))
    except ValueError:
        wanted = None
    found = wanted and db.session.scalar(sa.select(Campaign).where(Campaign.id == wanted))
    if not found:
        raise NotFound(_("No such campaign."))
    return found


def listing() -> list[Campaign]:
    return list(db.session.scalars(sa.select(Campaign).order_by(Campaign.created_at.desc())))


def template_for(campaign: Campaign, language: str) -> str:
    return campaign.templates.get(language) or campaign.templates[campaign.default_language]


def count(tenant, campaign: Campaign) -> dict:
    """The campaign's segment counted for its channels (see :func:`segments.count`)."""
    return segments.count(tenant, segments.from_json(campaign.segment), campaign.channels)


# --- preview and the country's rules ----------------------------------------------------------


def _sample(tenant, campaign: Campaign, channel: str) -> Patient | None:
    """A patient of the segment reachable on ``channel`` (to judge the text as the rules will)."""
    return db.session.scalar(
        sa.select(Patient)
        .options(defer(Patient.attributes))
        .where(
            *segments.conditions(tenant, segments.from_json(campaign.segment)),
            segments.reachable(tenant, channel),
        )
        .order_by(Patient.id)
        .limit(1)
    )


def preview(tenant, campaign: Campaign) -> dict:
    """Per channel, what a patient of the segment would get in the default language, as the
    country's rules amend it (a STOP mention...) and as the channel shapes it (a push's title
    and cut text, the words a call says), with the SMS segments and encoding, and the rules'
    verdict."""
    shown = {}
    language = campaign.default_language
    for channel in campaign.channels:
        template = {"text": campaign.templates[language], "subject": campaign.name}
        patient = _sample(tenant, campaign, channel)
        variables = sample_variables(tenant)
        if patient is None:
            content, verdict = render_message(template, variables), None
        else:
            content, verdict = trial_message(
                tenant, patient, "campaign", template, variables, [channel]
            )
        entry = channel_preview(tenant, channel, content["text"], content.get("subject"), language)
        entry["verdict"] = verdict.action if verdict else None
        entry["reasons"] = [str(r) for r in verdict.reasons] if verdict else []
        if channel == "sms":
            encoding, count_ = sms_segments(content["text"])
            entry.update(encoding=encoding, segments=count_, characters=len(content["text"]))
        shown[channel] = entry
    return shown


def _rules_refusal(tenant, campaign: Campaign) -> None:
    """:raises ValidationError: when the country's rules refuse the campaign on a channel
    for a patient who consented (a missing STOP mention, a refused sender...)."""
    for channel in campaign.channels:
        patient = _sample(tenant, campaign, channel)
        if patient is None:
            continue
        template = {"text": template_for(campaign, patient.language), "subject": campaign.name}
        variables = _variables(tenant, patient)
        _content, verdict = trial_message(
            tenant, patient, "campaign", template, variables, [channel]
        )
        if verdict.action == "deny":
            why = "; ".join(str(r) for r in verdict.reasons) or (verdict.reason or "")
            raise ValidationError(
                _(
                    "The country's rules refuse this campaign by %(channel)s: %(why)s.",
                    channel=channel.upper(),
                    why=why,
                ),
                "channels",
            )


def _variables(tenant, patient: Patient) -> dict:
    return {"patient": patient.first_name, "last_name": patient.last_name, "clinic": tenant.name}


# --- starting and the chunks ------------------------------------------------------------------


def chunk_size(tenant) -> int:
    return int(plugin_setting(tenant, PLUGIN, "chunk") or 1000)


def start(tenant, campaign: Campaign) -> Campaign:
    """Check the campaign, then queue its plan job (now, or at its start time).

    :raises ValidationError: an unknown variable, a start time now past, an empty segment,
        the country's rules refusing it; nothing changes.
    """
    if campaign.state != "draft":
        raise ValidationError(_("This campaign has already been started."), "state")
    for lang, text in campaign.templates.items():
        check_template(text, f"template_{lang}")
    if campaign.start_at is not None and campaign.start_at <= utcnow():
        raise ValidationError(_("The start must be in the future."), "start_at")
    counted = count(tenant, campaign)
    if not counted["recipients"]:
        raise ValidationError(
            _("No patient of this segment can be reached by the chosen channels."), "segment"
        )
    _rules_refusal(tenant, campaign)
    campaign.excluded = counted
    campaign.state = "scheduled" if campaign.start_at else "running"
    if campaign.state == "running":
        campaign.started_at = utcnow()
    record_audit("campaign.start", campaign.id, detail=campaign.name[:100])
    _queue_plan(tenant, campaign, campaign.start_at)
    return campaign


def _queue_plan(tenant, campaign: Campaign, at: datetime | None) -> None:
    """Note when the plan job is queued (or due), commit, then queue it."""
    campaign.plan_queued_at = at or utcnow()
    db.session.commit()
    run_later(tenant, JOB + "plan", str(campaign.id), queue_name="bulk", at=at)


def _insert(model):
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def plan(campaign_id: str) -> None:
    """Job: cut the campaign's recipients into chunks of ``chunk`` patient ids and queue one
    job per chunk (spread over time when the campaign has a rate). Safe to run twice."""
    campaign = find(campaign_id)
    if campaign.state not in ("scheduled", "running"):
        return
    tenant = db.session.get(Tenant, campaign.tenant_id)
    size = chunk_size(tenant)
    if not db.session.scalar(
        sa.select(sa.func.count())
        .select_from(CampaignChunk)
        .where(CampaignChunk.campaign_id == campaign.id)
    ):
        segment = segments.from_json(campaign.segment)
        query, reachable = segments.joined_reach(
            tenant, sa.select(Patient.id).select_from(Patient), campaign.channels
        )
        ordered = (
            query.with_only_columns(
                Patient.id.label("id"),
                sa.func.row_number().over(order_by=Patient.id).label("n"),
                sa.func.count().over().label("total"),
            )
            .where(*segments.conditions(tenant, segment), reachable)
            .subquery()
        )
        bounds = db.session.execute(
            sa.select(ordered.c.id, ordered.c.total)
            .where(sa.or_(ordered.c.n % size == 0, ordered.c.n == ordered.c.total))
            .order_by(ordered.c.id)
        ).all()
        campaign.total = bounds[0].total if bounds else 0
        rows, after = [], None
        for number, (last, _total) in enumerate(bounds):
            rows.append(
                {
                    "tenant_id": campaign.tenant_id,
                    "campaign_id": campaign.id,
                    "number": number,
                    "after_id": after,
                    "last_id": last,
                }
            )
            after = last
        if rows:
            db.session.execute(_insert(CampaignChunk).on_conflict_do_nothing(), rows)
    if campaign.state == "scheduled":
        campaign.state, campaign.started_at = "running", utcnow()
    db.session.commit()
    _queue_chunks(tenant, campaign)
    _finish_if_done(campaign.id)


def _queue_chunks(tenant, campaign: Campaign) -> None:
    """Queue the chunks not done yet. With a rate, each at its time; without, the first
    only: each chunk queues the next when it is written (:func:`run_chunk`), so the
    messages of the first chunks are delivered while the next ones are written, rather
    than behind all of them on the ``bulk`` queue, and one worker writes while the others
    deliver."""
    size, now = chunk_size(tenant), utcnow()
    query = (
        sa.select(CampaignChunk.number)
        .where(CampaignChunk.campaign_id == campaign.id, CampaignChunk.done_at.is_(None))
        .order_by(CampaignChunk.number)
    )
    numbers = db.session.scalars(query if campaign.rate else query.limit(1)).all()
    due = {}
    for number in numbers:
        at = None
        if campaign.rate:
            when = campaign.started_at + timedelta(minutes=number * size / campaign.rate)
            at = when if when > now else None
        due[number] = at
    _note_queued(campaign, {number: at or now for number, at in due.items()})
    db.session.commit()
    for number, at in due.items():
        run_later(tenant, JOB + "run_chunk", str(campaign.id), number, queue_name="bulk", at=at)


def _note_queued(campaign: Campaign, times: dict[int, datetime]) -> None:
    """Record when each chunk's job is queued (or due): ``{number: time}``."""
    if not times:
        return
    table = CampaignChunk.__table__
    db.session.execute(
        table.update()
        .where(
            table.c.tenant_id == sa.bindparam("t"),
            table.c.campaign_id == sa.bindparam("c"),
            table.c.number == sa.bindparam("n"),
        )
        .values(queued_at=sa.bindparam("q")),
        [
            {"t": campaign.tenant_id, "c": campaign.id, "n": number, "q": at}
            for number, at in times.items()
        ],
    )


def run_chunk(campaign_id: str, number: int) -> int:
    """Job: write the messages of one chunk of the campaign; returns how many. Does nothing
    when the campaign is not running (paused, cancelled) or the chunk is done; claims each
    patient once, so a second run sends nobody twice."""
    campaign = find(campaign_id)
    if campaign.state != "running":
        return 0
    # Locked while it is written: a second job on it (a resume, the sweep) skips it meanwhile.
    chunk = db.session.get(
        CampaignChunk,
        (campaign.tenant_id, campaign.id, number),
        with_for_update={"skip_locked": True},
    )
    if chunk is None or chunk.done_at is not None:
        return 0
    tenant = db.session.get(Tenant, campaign.tenant_id)
    segment = segments.from_json(campaign.segment)
    selection = sa.select(
        sa.literal(campaign.tenant_id, sa.Uuid),
        sa.literal(campaign.id, sa.Uuid),
        Patient.id,
        sa.literal("claimed"),
    ).where(
        *segments.conditions(tenant, segment),
        segments.reachable_on_any(tenant, campaign.channels),
        Patient.id <= chunk.last_id,
        *([Patient.id > chunk.after_id] if chunk.after_id else []),
    )
    claimed = db.session.scalars(
        _insert(CampaignRecipient)
        .from_select(["tenant_id", "campaign_id", "patient_id", "outcome"], selection)
        .on_conflict_do_nothing()
        .returning(CampaignRecipient.patient_id)
    ).all()
    found = for_sending(claimed)
    patients = [found[patient_id] for patient_id in sorted(found)]
    drafts = []
    size, now = chunk_size(tenant), utcnow()
    # Read once for the chunk, not once a patient.
    by_language = {
        lang: {"text": text, "subject": campaign.name} for lang, text in campaign.templates.items()
    }
    default, channels = by_language[campaign.default_language], list(campaign.channels)
    for position, patient in enumerate(patients):
        not_before = None
        if campaign.rate:
            index = number * size + position
            not_before = campaign.started_at + timedelta(seconds=index * 60 / campaign.rate)
        drafts.append(
            {
                "patient": patient,
                "purpose": "campaign",
                "template": by_language.get(patient.language, default),
                "variables": _variables(tenant, patient),
                "channels": channels,
                "not_before": not_before if not_before and not_before > now else None,
            }
        )
    results = send_many(tenant, drafts)
    update_many(  # one statement, where an executemany ran an UPDATE per recipient
        CampaignRecipient.__table__,
        [
            {
                "tenant_id": campaign.tenant_id,
                "campaign_id": campaign.id,
                "patient_id": patient.id,
                "message_id": result.id if isinstance(result, Message) else None,
                "outcome": _first_outcome(result),
            }
            for patient, result in zip(patients, results, strict=True)
        ],
        keys=("tenant_id", "campaign_id", "patient_id"),
    )
    chunk.done_at = utcnow()
    following = None
    if not campaign.rate:
        following = db.session.scalar(
            sa.select(sa.func.min(CampaignChunk.number)).where(
                CampaignChunk.campaign_id == campaign.id,
                CampaignChunk.done_at.is_(None),
                CampaignChunk.number > number,
            )
        )
        if following is not None:
            _note_queued(campaign, {following: utcnow()})
    db.session.commit()  # the chunk's due messages are pushed to the bulk queue now
    if following is not None:
        run_later(tenant, JOB + "run_chunk", str(campaign.id), following, queue_name="bulk")
    _finish_if_done(campaign.id)
    return len(patients)


def _first_outcome(result) -> str:
    if not isinstance(result, Message):
        return "invalid"
    if result.status == MessageStatus.DENIED:
        return "refused"
    if result.status == MessageStatus.SCHEDULED:
        return "deferred" if result.verdict == "defer" else "scheduled"
    return "queued"


def _finish_if_done(campaign_id) -> None:
    """The campaign is done once every chunk is (checked after each chunk commits, so the
    last one to commit sees them all)."""
    undone = sa.select(CampaignChunk.number).where(
        CampaignChunk.campaign_id == Campaign.id, CampaignChunk.done_at.is_(None)
    )
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == uuid.UUID(str(campaign_id)), Campaign.state == "running")
        .where(~sa.exists(undone))
        .values(state="done", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def requeue_lost(now: datetime) -> dict[str, int]:
    """The sweep's part (every clinic's rows visible): queue again the jobs of running
    campaigns that were lost, i.e. not done a :data:`LEASE` after they were queued (or due):
    a chunk not written (skipping one a worker is writing: its row is locked; one without a
    queued time counts from the campaign's start), and a plan that never ran (a campaign
    running or past its start without chunks). Returns how many of each. Safe however often
    it runs: a chunk claims each patient once, so a job queued again sends nobody twice."""
    stale = now - LEASE
    before = aliased(CampaignChunk)
    waits = sa.exists().where(  # for the chunk before it, which queues it once written
        before.tenant_id == CampaignChunk.tenant_id,
        before.campaign_id == CampaignChunk.campaign_id,
        before.number == CampaignChunk.number - 1,
        before.done_at.is_(None),
    )
    # No queued time: planned before campaigns_0002 kept it (queued at the start, all at
    # once), or waiting for the chunk before it (no rate). Lost once the campaign started a
    # lease ago, unless it waits (one primary-key look-up: the sweep runs every second).
    never_noted = sa.and_(
        CampaignChunk.queued_at.is_(None),
        Campaign.started_at < stale,
        sa.or_(Campaign.rate > 0, ~waits),
    )
    chunks = db.session.execute(
        sa.select(CampaignChunk.tenant_id, CampaignChunk.campaign_id, CampaignChunk.number)
        .join(
            Campaign,
            sa.and_(
                Campaign.tenant_id == CampaignChunk.tenant_id,
                Campaign.id == CampaignChunk.campaign_id,
            ),
        )
        .where(
            Campaign.state == "running",
            CampaignChunk.done_at.is_(None),
            sa.or_(CampaignChunk.queued_at < stale, never_noted),
        )
        .limit(BATCH)
        .with_for_update(of=CampaignChunk, skip_locked=True)
    ).all()
    chunked = sa.exists().where(
        CampaignChunk.tenant_id == Campaign.tenant_id, CampaignChunk.campaign_id == Campaign.id
    )
    plans = db.session.execute(
        sa.select(Campaign.tenant_id, Campaign.id)
        .where(
            Campaign.state.in_(("running", "scheduled")),
            # Without a queued time (started before campaigns_0002): when it was due.
            sa.func.coalesce(Campaign.plan_queued_at, Campaign.start_at, Campaign.started_at)
            < stale,
            ~chunked,
        )
        .limit(BATCH)
        .with_for_update(of=Campaign, skip_locked=True)
    ).all()
    if chunks:
        db.session.execute(
            sa.update(CampaignChunk)
            .where(
                sa.tuple_(
                    CampaignChunk.tenant_id, CampaignChunk.campaign_id, CampaignChunk.number
                ).in_([tuple(c) for c in chunks])
            )
            .values(queued_at=now)
            .execution_options(synchronize_session=False)
        )
    if plans:
        db.session.execute(
            sa.update(Campaign)
            .where(sa.tuple_(Campaign.tenant_id, Campaign.id).in_([tuple(p) for p in plans]))
            .values(plan_queued_at=now)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    for tenant_id, campaign_id, number in chunks:
        run_later(tenant_id, JOB + "run_chunk", str(campaign_id), number, queue_name="bulk")
    for tenant_id, campaign_id in plans:
        run_later(tenant_id, JOB + "plan", str(campaign_id), queue_name="bulk")
    return {"chunks": len(chunks), "plans": len(plans)}


# --- pause, resume, cancel --------------------------------------------------------------------


def pause(campaign: Campaign) -> None:
    """Stop writing chunks (the ones being written finish); messages written still leave."""
    if campaign.state not in ("running", "scheduled"):
        raise ValidationError(_("Only a running or scheduled campaign can be paused."), "state")
    campaign.state = "paused"
    record_audit("campaign.pause", campaign.id)


def resume(tenant, campaign: Campaign) -> None:
    """Queue again the chunks not written yet (or the plan, if it never ran). On a running
    campaign, queues again the chunks whose jobs were lost (a worker killed, Redis emptied):
    a chunk already written claims nobody again."""
    if campaign.state not in ("paused", "running"):
        raise ValidationError(_("Only a paused or running campaign can be resumed."), "state")
    planned = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(CampaignChunk)
        .where(CampaignChunk.campaign_id == campaign.id)
    )
    later = not planned and campaign.start_at is not None and campaign.start_at > utcnow()
    campaign.state = "scheduled" if later else "running"  # paused before its start time
    if not later:
        campaign.started_at = campaign.started_at or utcnow()
    record_audit("campaign.resume", campaign.id)
    db.session.commit()
    if planned:
        _queue_chunks(tenant, campaign)
        _finish_if_done(campaign.id)
    else:
        _queue_plan(tenant, campaign, campaign.start_at if later else None)


def cancel(campaign: Campaign) -> int:
    """Stop the campaign for good; its messages still waiting (quiet hours, a rate) are
    cancelled, a campaign done writing included. Returns how many were."""
    if campaign.state == "cancelled" or (campaign.state == "done" and not waiting(campaign)):
        raise ValidationError(_("This campaign is already over."), "state")
    campaign.state, campaign.finished_at = "cancelled", utcnow()
    record_audit("campaign.cancel", campaign.id)
    found = db.session.scalars(
        sa.select(Message)
        .join(
            CampaignRecipient,
            sa.and_(
                CampaignRecipient.tenant_id == Message.tenant_id,
                CampaignRecipient.message_id == Message.id,
            ),
        )
        .where(
            CampaignRecipient.campaign_id == campaign.id,
            Message.status == MessageStatus.SCHEDULED,
        )
    )
    return sum(1 for m in found if cancel_message(m, "campaign cancelled"))


def waiting(campaign: Campaign) -> int:
    """How many of the campaign's messages wait for their time (quiet hours, a rate)."""
    figures = progress(campaign)["figures"]
    return figures["queued"] + figures["deferred"]


# --- an operator's campaign across a country -------------------------------------------------


def clinics_of(country: str) -> list[Tenant]:
    """The clinics of ``country`` that have the campaigns feature (platform scope)."""
    found = db.session.scalars(
        sa.select(Tenant).where(Tenant.country_code == country.upper()).order_by(Tenant.slug)
    )
    return [t for t in found if PLUGIN in enabled_plugins(t)]


def countries_with_campaigns() -> list[str]:
    """The countries where at least one clinic has the campaigns feature (platform scope)."""
    found = db.session.scalars(sa.select(Tenant).order_by(Tenant.country_code, Tenant.slug))
    return sorted({t.country_code for t in found if PLUGIN in enabled_plugins(t)})


def start_in_country(country: str, data, by: str) -> tuple[uuid.UUID, dict[str, str]]:
    """Start one campaign in every clinic of ``country`` that has the feature, each on its
    own patients, under its own sender and rules, all sharing one run id; returns it and,
    per clinic, ``"started"`` or why it did not start (its draft is kept, to read or change).

    :raises ValidationError: when no clinic of the country has the feature.
    """
    clinics = clinics_of(country)
    if not clinics:
        raise ValidationError(_("No clinic of this country has campaigns enabled."), "country")
    # Checked once before any clinic gets a draft: the same checks as a clinic's own form.
    # The segment is the country's: no clinic's practitioner in it.
    data = {k: v for k, v in dict(data).items() if k != "practitioner_id"}
    with tenant_scope(clinics[0].id):
        parse_draft(clinics[0], data)
    run, outcome = uuid.uuid4(), {}
    for clinic in clinics:
        with tenant_scope(clinic.id):
            try:
                campaign = save(clinic, data, by=by)
                campaign.country_run = run
                db.session.commit()
            except ValidationError as exc:
                db.session.rollback()
                outcome[clinic.slug] = exc.message
                continue
            try:
                start(clinic, campaign)
                outcome[clinic.slug] = "started"
            except ValidationError as exc:
                db.session.rollback()
                outcome[clinic.slug] = exc.message
    return run, outcome


def country_figures(run) -> dict[str, dict]:
    """Per clinic (by slug), the progress of its part of the country-wide campaign ``run``
    (see :func:`progress`), with the clinic's name as ``clinic``, the campaign's as ``name``,
    and ``expected``: its recipients (counted when it started, until its plan has run)."""
    figures = {}
    found = db.session.execute(
        sa.select(Tenant.id, Tenant.slug, Tenant.name)
        .join(Campaign, Campaign.tenant_id == Tenant.id)
        .where(Campaign.country_run == run)
        .order_by(Tenant.slug)
    ).all()
    for tenant_id, slug, clinic_name in found:
        with tenant_scope(tenant_id):
            campaign = db.session.scalar(sa.select(Campaign).where(Campaign.country_run == run))
            shown = progress(campaign)
            # Before the plan counts the recipients, the count made when it started.
            expected = shown["total"]
            if expected is None:
                expected = (campaign.excluded or {}).get("recipients", 0)
            figures[slug] = {
                **shown,
                "clinic": clinic_name,
                "name": campaign.name,
                "expected": expected,
            }
    return figures


def country_runs(limit: int = 50) -> list[dict]:
    """The latest country-wide campaigns, newest first (platform scope): each run's id,
    name, country, when it was started, and in how many clinics."""
    rows = db.session.execute(
        sa.select(
            Campaign.country_run,
            sa.func.min(Campaign.name),
            sa.func.min(Tenant.country_code),
            sa.func.min(Campaign.created_at),
            sa.func.count(),
        )
        .join(Tenant, Tenant.id == Campaign.tenant_id)
        .where(Campaign.country_run.isnot(None))
        .group_by(Campaign.country_run)
        .order_by(sa.func.min(Campaign.created_at).desc())
        .limit(limit)
    ).all()
    return [
        {"run": run, "name": name, "country": country, "created_at": created, "clinics": n}
        for run, name, country, created, n in rows
    ]


# --- figures ----------------------------------------------------------------------------------


def progress(campaign: Campaign) -> dict:
    """Where the campaign stands: its state, how many recipients it has and how many were
    written, and its messages by what became of them (``BUCKETS``)."""
    figures = dict.fromkeys(BUCKETS, 0)
    rows = db.session.execute(
        sa.select(Message.status, Message.verdict, sa.func.count())
        .join(
            CampaignRecipient,
            sa.and_(
                CampaignRecipient.tenant_id == Message.tenant_id,
                CampaignRecipient.message_id == Message.id,
            ),
        )
        .where(CampaignRecipient.campaign_id == campaign.id)
        .group_by(Message.status, Message.verdict)
    )
    for status, verdict, number in rows:
        bucket = _BUCKET_OF[MessageStatus(status)]
        if status == MessageStatus.SCHEDULED and verdict == "defer":
            bucket = "deferred"
        figures[bucket] += number
    written, invalid = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(CampaignRecipient.outcome == "invalid"),
        ).where(CampaignRecipient.campaign_id == campaign.id)
    ).one()
    figures["failed"] += invalid
    finished = sum(figures[b] for b in ("sent", "delivered", "failed", "refused", "cancelled"))
    return {
        "id": str(campaign.id),
        "state": campaign.state,
        "total": campaign.total,
        "written": written,
        "finished": finished,
        "figures": figures,
        "excluded": campaign.excluded,
        "started_at": campaign.started_at.isoformat() if campaign.started_at else None,
        "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None,
    }


def outcomes_csv(campaign: Campaign):
    """The per-recipient outcomes as CSV lines (patient id, message id, first outcome, the
    message's status and channel now), by keyset pages. The caller audits the read."""
    yield "patient_id,message_id,outcome,status,channel,verdict_rule\r\n"
    last = None
    while True:
        query = (
            sa.select(
                CampaignRecipient.patient_id,
                CampaignRecipient.message_id,
                CampaignRecipient.outcome,
                Message.status,
                Message.channels,
                Message.channel_index,
                Message.verdict_rule,
            )
            .outerjoin(
                Message,
                sa.and_(
                    Message.tenant_id == CampaignRecipient.tenant_id,
                    Message.id == CampaignRecipient.message_id,
                ),
            )
            .where(CampaignRecipient.campaign_id == campaign.id)
            .order_by(CampaignRecipient.patient_id)
            .limit(1000)
        )
        if last is not None:
            query = query.where(CampaignRecipient.patient_id > last)
        rows = db.session.execute(query).all()
        if not rows:
            return
        out = io.StringIO()
        writer = csv.writer(out)
        for patient_id, message_id, outcome, status, channels, index, rule in rows:
            channel = channels[min(index or 0, len(channels) - 1)] if channels else ""
            writer.writerow(
                [patient_id, message_id or "", outcome, status or "", channel, rule or ""]
            )
        yield out.getvalue()
        last = rows[-1][0]
