"""The audit trail: every read of health data by staff or an integrator is recorded."""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import g
from flask_babel import gettext as _
from flask_login import current_user

from core import validation as check
from core.clinic.models import ApiKey, AuditEvent, Patient, User
from core.db import db, utcnow
from core.errors import ValidationError


def actor() -> str:
    """Who acts in the current request: ``user:<id>`` or ``api_key:<id>``."""
    key = g.get("api_key")
    if key is not None:
        return f"api_key:{key.id}"
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "system"


def record(
    action: str,
    object_id: uuid.UUID | None = None,
    detail: str | None = None,
    by: str | None = None,
) -> None:
    """Add an audit event to the current transaction (committed with the change it records).

    :param detail: a few words for the reader (never health data, a code or a secret).
    :param by: who acts, when it is not the request's staff member or key (``"visitor"``).
    """
    db.session.add(
        AuditEvent(
            actor=by or actor(),
            action=action,
            object_id=object_id,
            detail=detail[:200] if detail else None,
        )
    )


# --- The log as the clinic's admins read it: who read or changed what, and when -------------

PAGE_SIZE = 50
CHART_DAYS = 14
ACTOR_KINDS = ("staff", "api_key", "patient", "visitor", "operator", "system")
# An action ("otp.sent"), or the start of some followed by a dot ("otp.": every code event).
_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?")
# Actions whose object is a patient's id (the others name a message, a code, a key...).
_PATIENT_ACTIONS = ("patient.", "consent.")


@dataclass(frozen=True)
class Filters:
    """What the log is narrowed to; empty means "any". Days are the clinic's, both included."""

    action: str = ""
    actor: str = ""  # one of ACTOR_KINDS
    start: date | None = None
    end: date | None = None

    def as_args(self) -> dict[str, str]:
        """The filters set, as query-string arguments (for the pages' links)."""
        args = {
            "action": self.action,
            "actor": self.actor,
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
        }
        return {k: v for k, v in args.items() if v}


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: the events ``older`` (or newer) than the event ``event_id``."""

    event_id: uuid.UUID
    older: bool


@dataclass
class LogPage:
    """One page of the log, and what the page needs to show it in plain words."""

    events: list[AuditEvent]
    total: int
    newer: uuid.UUID | None  # the cursor of the newer page, if there is one
    older: uuid.UUID | None
    actors: dict[str, str] = field(default_factory=dict)  # actor -> who, in words
    patients: dict[uuid.UUID, str] = field(default_factory=dict)  # id -> "Last First"
    per_day: list[tuple[date, int]] = field(default_factory=list)  # oldest first
    actions: list[str] = field(default_factory=list)  # the actions the clinic's log holds


def parse_filters(args: Mapping[str, str]) -> Filters:
    """The filters of a request. :raises ValidationError: naming the field with a bad value."""
    action = (args.get("action") or "").strip()
    if action and (len(action) > 40 or not _ACTION.fullmatch(action)):
        raise ValidationError(
            _("Choose an action in the list, or write the start of one followed by a dot."),
            "action",
        )
    actor = (args.get("actor") or "").strip()
    if actor and actor not in ACTOR_KINDS:
        raise ValidationError(
            _("Choose one of: %(v)s.", v=", ".join(actor_labels().values())), "actor"
        )
    start, end = _day(args, "from"), _day(args, "to")
    if start and end and end < start:
        raise ValidationError(_("This date is before the first one."), "to")
    return Filters(action, actor, start, end)


def parse_cursor(args: Mapping[str, str]) -> Cursor | None:
    """The page asked for: ``before`` or ``after`` an event id; None for the newest.

    :raises ValidationError: on ``before`` or ``after`` when it is not an event id.
    """
    for name, older in (("before", True), ("after", False)):
        value = args.get(name)
        if value:
            try:
                return Cursor(uuid.UUID(value), older)
            except ValueError:
                raise ValidationError(_no_such_page(), name) from None
    return None


def read_log(filters: Filters, timezone: str, cursor: Cursor | None = None) -> LogPage:
    """A page of the clinic's events matching ``filters``, newest first, with who did them
    in words, the patients they concern, and the events per day of the last two weeks.

    :param timezone: the clinic's, in which the filters' days and the chart's days fall.
    :raises ValidationError: when the cursor's event is not in the log (purged).
    """
    zone = ZoneInfo(timezone)
    conditions = _conditions(filters, zone)
    events = _page(conditions, cursor)
    newer = older = None
    if events:
        first, last = events[0], events[-1]
        newer = first.id if _exists(conditions, _after(first.at, first.id)) else None
        older = last.id if _exists(conditions, _before(last.at, last.id)) else None
    # count(AuditEvent.id), not count(*) from it: the tenant filter follows the entities
    # selected (tenants.scoping), and a bare select_from is not one of them.
    total = db.session.scalar(sa.select(sa.func.count(AuditEvent.id)).where(*conditions))
    page = LogPage(
        events,
        total,
        newer,
        older,
        actors=_actor_names(events),
        patients=_patient_names(events),
        per_day=_per_day(filters, zone),
        actions=present_actions(),
    )
    record("audit.read", detail=_describe(filters, cursor))
    return page


def present_actions() -> list[str]:
    """The actions the clinic's log holds (a scan of the clinic's rows: should logs grow
    very large, an index on ``(tenant_id, action)`` would serve it)."""
    return list(
        db.session.scalars(sa.select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )


def concerns_patient(event: AuditEvent) -> bool:
    return event.object_id is not None and event.action.startswith(_PATIENT_ACTIONS)


def _page(conditions: list, cursor: Cursor | None) -> list[AuditEvent]:
    stmt = sa.select(AuditEvent).where(*conditions)
    if cursor is None:
        return _newest(stmt)
    anchor = db.session.execute(
        sa.select(AuditEvent.at, AuditEvent.id).where(AuditEvent.id == cursor.event_id)
    ).one_or_none()
    if anchor is None:
        raise ValidationError(_no_such_page(), "before" if cursor.older else "after")
    if cursor.older:
        return _newest(stmt.where(_before(*anchor)))
    rows = db.session.scalars(
        stmt.where(_after(*anchor)).order_by(AuditEvent.at, AuditEvent.id).limit(PAGE_SIZE)
    ).all()
    if len(rows) < PAGE_SIZE:  # back at the top: the newest page, full
        return _newest(stmt)
    return list(reversed(rows))


def _newest(stmt) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(PAGE_SIZE)
        )
    )


def _before(at: datetime, event_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """Events older than (at, id): ``at`` alone may tie within one transaction."""
    return sa.or_(AuditEvent.at < at, sa.and_(AuditEvent.at == at, AuditEvent.id < event_id))


def _after(at: datetime, event_id: uuid.UUID) -> sa.ColumnElement[bool]:
    return sa.or_(AuditEvent.at > at, sa.and_(AuditEvent.at == at, AuditEvent.id > event_id))


def _exists(conditions: list, where: sa.ColumnElement[bool]) -> bool:
    found = db.session.scalar(sa.select(AuditEvent.id).where(*conditions, where).limit(1))
    return found is not None


def _conditions(filters: Filters, zone: ZoneInfo) -> list[sa.ColumnElement[bool]]:
    conditions = _what_and_who(filters)
    if filters.start:
        conditions.append(AuditEvent.at >= _midnight(filters.start, zone))
    if filters.end:
        conditions.append(AuditEvent.at < _midnight(filters.end + timedelta(days=1), zone))
    return conditions


def _what_and_who(filters: Filters) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if filters.action.endswith("."):
        conditions.append(AuditEvent.action.startswith(filters.action, autoescape=True))
    elif filters.action:
        conditions.append(AuditEvent.action == filters.action)
    if filters.actor == "staff":
        conditions.append(AuditEvent.actor.startswith("user:"))
    elif filters.actor == "api_key":
        conditions.append(AuditEvent.actor.startswith("api_key:"))
    elif filters.actor:
        conditions.append(AuditEvent.actor == filters.actor)
    return conditions


def _per_day(filters: Filters, zone: ZoneInfo) -> list[tuple[date, int]]:
    """Events a day over the last CHART_DAYS days of the clinic, whatever the filters' days:
    one query, a sum per day (portable, and right across a change of summer time)."""
    today = utcnow().astimezone(zone).date()
    days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    bounds = [_midnight(day, zone) for day in [*days, today + timedelta(days=1)]]
    sums = [
        sa.func.coalesce(
            sa.func.sum(sa.case((sa.and_(AuditEvent.at >= lo, AuditEvent.at < hi), 1), else_=0)),
            0,
        )
        for lo, hi in pairwise(bounds)
    ]
    counts = db.session.execute(
        sa.select(*sums).where(
            *_what_and_who(filters), AuditEvent.at >= bounds[0], AuditEvent.at < bounds[-1]
        )
    ).one()
    return list(zip(days, (int(n) for n in counts), strict=True))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _day(args: Mapping[str, str], name: str) -> date | None:
    return check.day((args.get(name) or "").strip(), name)


def _no_such_page() -> str:
    return _("This page of the log is no longer there: start again from the newest events.")


def _describe(filters: Filters, cursor: Cursor | None) -> str | None:
    """The read's detail: the filters, in a few words (never patient data)."""
    words = [f"{k}={v}" for k, v in filters.as_args().items()]
    if cursor is not None:
        words.append("older page" if cursor.older else "newer page")
    return " ".join(words) or None


# --- who and what, in words -------------------------------------------------------------------


def _actor_names(events: list[AuditEvent]) -> dict[str, str]:
    """Each actor of ``events`` in words: a staff member's name, an API key's, "Visitor"..."""
    ids = {"user": set(), "api_key": set()}
    for event in events:
        kind, _sep, value = event.actor.partition(":")
        if kind in ids and _uuid(value):
            ids[kind].add(_uuid(value))
    users = _names(User, ids["user"])
    keys = _names(ApiKey, ids["api_key"])
    fixed = {
        "visitor": _("Visitor"),
        "patient": _("Patient"),
        "operator": _("Relais operator"),
        "system": _("Relais (automatic)"),
    }
    names = {}
    for event in events:
        kind, _sep, value = event.actor.partition(":")
        name = event.actor
        if event.actor in fixed:
            name = fixed[event.actor]
        elif kind == "user":
            name = users.get(_uuid(value)) or _("Unknown staff member")
        elif kind == "api_key":
            key = keys.get(_uuid(value))
            name = _("API key: %(name)s", name=key) if key else _("Unknown API key")
        names[event.actor] = name
    return names


def _names(model, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = db.session.execute(sa.select(model.id, model.name).where(model.id.in_(ids)))
    return {row.id: row.name for row in rows}


def _patient_names(events: list[AuditEvent]) -> dict[uuid.UUID, str]:
    """The patients ``events`` concern that the clinic still holds, by id."""
    ids = {e.object_id for e in events if concerns_patient(e)}
    if not ids:
        return {}
    rows = db.session.execute(
        sa.select(Patient.id, Patient.last_name, Patient.first_name).where(Patient.id.in_(ids))
    )
    return {row.id: f"{row.last_name} {row.first_name}" for row in rows}


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def actor_labels() -> dict[str, str]:
    """The kinds of actor the log can be narrowed to."""
    return {
        "staff": _("Staff"),
        "api_key": _("API key"),
        "patient": _("Patient"),
        "visitor": _("Visitor"),
        "operator": _("Relais operator"),
        "system": _("Relais (automatic)"),
    }


def action_labels() -> dict[str, str]:
    """What each action Relais records means, in plain words (others are shown as recorded)."""
    return {
        "audit.read": _("Audit log read"),
        "patient.read": _("Patient record read"),
        "patient.search": _("Patients searched"),
        "patient.create": _("Patient record created"),
        "patient.update": _("Patient record changed"),
        "patient.export": _("Patients exported"),
        "patient.sign_up": _("Signed up online"),
        "patient.reviewed": _("Online sign-up checked"),
        "consent.given": _("Consent recorded"),
        "consent.confirmed": _("Consent confirmed"),
        "consent.withdrawn": _("Opt-out recorded"),
        "message.search": _("Messages searched"),
        "message.read": _("Message read"),
        "otp.sent": _("Code sent"),
        "otp.failed": _("Wrong code entered"),
        "otp.blocked": _("Blocked"),
        "otp.refused": _("Code refused: asked too soon"),
        "otp.verified": _("Code confirmed"),
        "user.create": _("Staff account created"),
        "user.invite": _("Administrator invited"),
        "user.accept_invitation": _("Invitation accepted"),
        "user.activate": _("Staff account reactivated"),
        "user.deactivate": _("Staff account deactivated"),
        "user.password": _("Password changed"),
        "user.sessions_ended": _("Logged out everywhere"),
        "api_key.create": _("API key created"),
        "api_key.revoke": _("API key revoked"),
        "appointment.read": _("Appointment read"),
        "appointment.search": _("Appointments searched"),
        "appointment.create": _("Appointment created"),
        "appointment.update": _("Appointment changed"),
    }


def group_labels() -> dict[str, str]:
    """The families of actions (what comes before the dot)."""
    return {
        "audit": _("Audit log"),
        "patient": _("Patients"),
        "consent": _("Consent"),
        "message": _("Messages"),
        "otp": _("Sign-up and login codes"),
        "user": _("Staff"),
        "api_key": _("API keys"),
        "appointment": _("Appointments"),
    }


def action_choices(present: list[str], chosen: str = "") -> list[tuple[str, list]]:
    """The action filter's options, by family: "every event of the family" (its prefix),
    then each action present; the chosen one is kept even when the log has none of it.

    :return: ``[(family label, [(value, label), ...]), ...]``
    """
    labels, groups = action_labels(), group_labels()
    families: dict[str, set[str]] = {}
    for action in {*present, *([chosen] if chosen else [])}:
        family, dot, _rest = action.partition(".")
        families.setdefault(family if dot else "", set())
        if action != f"{family}.":
            families[family if dot else ""].add(action)
    choices = []
    for family in sorted(families, key=lambda f: (not f, groups.get(f, f).lower())):
        name = groups.get(family, family) if family else _("Other")
        options = [(f"{family}.", _("All: %(family)s", family=name))] if family else []
        actions = sorted(families[family], key=lambda a: labels.get(a, a).lower())
        options += [(a, labels.get(a, a)) for a in actions]
        choices.append((name, options))
    return choices
