"""Patients' consent to non-essential messages, per channel: given, confirmed, withdrawn.

Transactional messages (codes, reminders, replies) need no consent; non-essential ones
(campaigns, practice news) do, for the channel they go by. Each step is a row of
:class:`core.models.Consent` saying how (form, paper, SMS reply, link, API) and by whom; the
latest step is the state. Where a country wants double opt-in (Germany), a consent counts only
once the patient confirmed it, by a link or an SMS reply: regulation plugins decide that
(see :func:`counts`).

Opt-out links and confirmation links are signed for one clinic, patient and channel, and
carry no expiry: an opt-out link in a years-old message must still work.
"""

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app, g
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer

from core.clinic import audit
from core.clinic.models import ApiKey, Consent, ConsentAction, ConsentMethod, Patient, User
from core.config import external_url
from core.db import among, db
from core.errors import NotFound, ValidationError
from core.i18n import format_date
from core.plugins import hooks_for
from core.vocabulary import CHANNELS
from tenants.models import Tenant

NON_ESSENTIAL = "non_essential"


@dataclass(frozen=True)
class ConsentState:
    """Where a patient's consent on a channel stands: ``none``, ``given`` (awaiting
    confirmation where double opt-in applies), ``confirmed`` or ``withdrawn``, since when."""

    status: str = "none"
    at: datetime | None = None
    method: str | None = None

    def counts(self, double_opt_in: bool) -> bool:
        """True when non-essential messages may go: given (and confirmed if required)."""
        if double_opt_in:
            return self.status == ConsentAction.CONFIRMED
        return self.status in (ConsentAction.GIVEN, ConsentAction.CONFIRMED)


def state(patient: Patient, channel: str, purpose: str = NON_ESSENTIAL) -> ConsentState:
    """The patient's consent on ``channel`` as its latest step left it."""
    known = g.get(_PRELOADED)
    if known is not None and purpose == NON_ESSENTIAL and patient.id in known[0]:
        return known[1].get((patient.id, channel), ConsentState())
    latest = db.session.execute(
        _LATEST, {"patient": patient.id, "channel": channel, "purpose": purpose}
    ).first()
    if latest is None:
        return ConsentState()
    action, at, method = latest
    return ConsentState(str(action), at, str(method))


# The latest step of one patient's consent: built once (every message judged asks it), its
# three columns only, not the row as an object (a twentieth of a POST /api/v1/messages).
_LATEST = (
    sa.select(Consent.action, Consent.at, Consent.method)
    .where(
        Consent.patient_id == sa.bindparam("patient"),
        Consent.channel == sa.bindparam("channel"),
        Consent.purpose == sa.bindparam("purpose"),
    )
    .order_by(Consent.at.desc(), Consent.id.desc())
    .limit(1)
)


_STEPS: dict[str, sa.Select] = {}  # preloaded's statement, by dialect
_PRELOADED = "_relais_consents"  # (patient ids, {(patient id, channel): state}) of a batch


@contextmanager
def preloaded(patients: Iterable[Patient]) -> Iterator[None]:
    """Read the consents of ``patients`` once, in one query: :func:`state` answers from
    them inside (a batch of messages judged together, ``outbox.send_many``). A step recorded
    meanwhile forgets them."""
    ids = {p.id for p in patients}
    found: dict[tuple[uuid.UUID, str], ConsentState] = {}
    if ids:
        dialect = db.session.get_bind().dialect.name
        statement = _STEPS.get(dialect)
        if statement is None:  # made once: a group of API posts reads them in each transaction
            statement = _STEPS[dialect] = (
                sa.select(
                    Consent.patient_id, Consent.channel, Consent.action, Consent.at, Consent.method
                )
                .where(among(Consent.patient_id, name="ids"), Consent.purpose == NON_ESSENTIAL)
                .order_by(Consent.at, Consent.id)
            )
        steps = db.session.execute(statement, {"ids": list(ids)})
        for patient_id, channel, action, at, method in steps:  # the latest step wins
            found[(patient_id, channel)] = ConsentState(str(action), at, str(method))
    outer = g.get(_PRELOADED)
    setattr(g, _PRELOADED, (ids, found))
    try:
        yield
    finally:
        setattr(g, _PRELOADED, outer)


def latest_action(channel: str, purpose: str = NON_ESSENTIAL) -> sa.ScalarSelect:
    """A SQL expression, correlated to :class:`Patient`: the latest step of the patient's
    consent on ``channel`` (``"given"``, ``"confirmed"``, ``"withdrawn"``, NULL for none), so
    that a query counts or selects patients by consent over thousands of rows at once (a
    campaign's segment), as :func:`state` reads it for one."""
    return _latest(channel, purpose, Consent.action).scalar_subquery()


def _latest(channel: str, purpose: str, *columns) -> sa.Select:
    """``columns`` of the latest consent step on ``channel`` of :class:`Patient` (correlated):
    one probe of the consents' index, whose first column is the clinic."""
    return (
        sa.select(*columns)
        .where(
            Consent.tenant_id == Patient.tenant_id,
            Consent.patient_id == Patient.id,
            Consent.channel == channel,
            Consent.purpose == purpose,
        )
        .order_by(Consent.at.desc(), Consent.id.desc())
        .limit(1)
        .correlate(Patient)
    )


def latest_steps(
    channel: str, purpose: str = NON_ESSENTIAL, name: str | None = None
) -> sa.FromClause:
    """The latest consent step on ``channel`` of each patient of the query it is joined to
    (``LEFT JOIN LATERAL``, named ``name``): columns ``patient_id`` and ``action``, NULL
    where the patient has none. Outer-joined on the patients, it answers
    :func:`latest_action` for a whole segment in one statement.

    One probe of the consents' index per patient: that plan holds on tables never analyzed
    (a clinic counting a segment right after importing its patients), where a ranking of
    all the clinic's consents joined on the patients was planned as a nested loop over the
    ranking (a 20,000-patient count ran for minutes under row-level security). Elsewhere
    (SQLite, the embedded demo) a ranking of the consents.
    """
    if db.session.get_bind().dialect.name != "postgresql":  # SQLite has no LATERAL: ranked
        ranked = (
            sa.select(
                Consent.patient_id,
                Consent.action,
                sa.func.row_number()
                .over(
                    partition_by=Consent.patient_id, order_by=(Consent.at.desc(), Consent.id.desc())
                )
                .label("n"),
            )
            .where(Consent.channel == channel, Consent.purpose == purpose)
            .subquery()
        )
        return sa.select(ranked.c.patient_id, ranked.c.action).where(ranked.c.n == 1).subquery(name)
    return _latest(channel, purpose, Consent.patient_id, Consent.action).lateral(name)


def states(patient: Patient) -> dict[str, ConsentState]:
    """The patient's consent on every channel."""
    return {channel: state(patient, channel) for channel in CHANNELS}


def history(patient: Patient) -> list[Consent]:
    """Every step of the patient's consents, newest first: the proof of consent."""
    return list(
        db.session.scalars(
            sa.select(Consent)
            .where(Consent.patient_id == patient.id)
            .order_by(Consent.at.desc(), Consent.id.desc())
        )
    )


def record(
    patient: Patient,
    channel: str,
    action: ConsentAction,
    method: ConsentMethod,
    actor: str,
    purpose: str = NON_ESSENTIAL,
) -> Consent | None:
    """Add a step to the patient's consent on ``channel``.

    Returns None, adding nothing, when the step changes nothing: a second withdrawal (so an
    opt-out is confirmed to the patient once), a confirmation with nothing awaiting it, a
    consent given again while it stands. A withdrawal with no consent before it is recorded:
    the patient's "no" stands against any later campaign.
    """
    current = state(patient, channel, purpose).status
    if (
        (action == ConsentAction.WITHDRAWN and current == ConsentAction.WITHDRAWN)
        or (action == ConsentAction.CONFIRMED and current != ConsentAction.GIVEN)
        or (
            action == ConsentAction.GIVEN
            and current in (ConsentAction.GIVEN, ConsentAction.CONFIRMED)
        )
    ):
        return None
    step = Consent(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        channel=channel,
        purpose=purpose,
        action=action,
        method=method,
        actor=actor,
    )
    db.session.add(step)
    db.session.flush()
    g.pop(_PRELOADED, None)  # what a batch read before is stale now
    tenant = db.session.get(Tenant, patient.tenant_id)
    hooks_for(tenant).relais_consent_recorded(tenant=tenant, patient=patient, consent=step)
    return step


# --- links ------------------------------------------------------------------------------------


def _serializer(tenant) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=f"relais.consent.{tenant.id}")


def link(tenant, patient: Patient, channel: str, action: ConsentAction) -> str:
    """An absolute link by which the patient withdraws (opt-out) or confirms their consent on
    ``channel``; it opens a page with one button, so a link preview changes nothing."""
    token = _serializer(tenant).dumps({"p": str(patient.id), "c": channel, "a": str(action)})
    # The clinic's subdomain said outright: a worker or webhook has no clinic in ``g``.
    return external_url("consent.page", tenant=tenant.slug, token=token)


def read_link(tenant, token: str) -> tuple[Patient, str, ConsentAction]:
    """The patient, channel and step a link stands for.

    :raises NotFound: when the link is not one of this clinic's.
    """
    try:
        data = _serializer(tenant).loads(token)
        patient_id, channel = uuid.UUID(str(data["p"])), str(data["c"])
        action = ConsentAction(data["a"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound(_("This link is not valid."), "token") from None
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == patient_id))
    if patient is None or channel not in CHANNELS:
        raise NotFound(_("This link is not valid."), "token")
    return patient, channel, action


# --- Consents as staff and integrators see and record them ----------------------------------

# Staff note a consent the patient gave (on paper, or a form they filled in) or the opt-out
# they asked for; a confirmation (double opt-in) comes from the patient only (link, SMS reply).
# An opt-out asked at the desk or on the phone is noted as ``form`` (the clinic's page): there
# is no method for "told staff", and the step's actor says which staff member noted it.
STAFF_ACTIONS = (ConsentAction.GIVEN, ConsentAction.WITHDRAWN)
STAFF_METHODS = (ConsentMethod.PAPER, ConsentMethod.FORM)


def parse_step(
    data: Mapping[str, Any],
    actions: Iterable[ConsentAction] = tuple(ConsentAction),
    methods: Iterable[ConsentMethod] = tuple(ConsentMethod),
    default_method: ConsentMethod | None = None,
) -> tuple[str, ConsentAction, ConsentMethod]:
    """The channel, action and method of a form or JSON body.

    :raises ValidationError: naming the first field that is missing or not one allowed.
    """
    channel = data.get("channel")
    if channel not in CHANNELS:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(CHANNELS)), "channel")
    return (
        channel,
        ConsentAction(_choice(data.get("action"), actions, "action")),
        ConsentMethod(_choice(data.get("method") or default_method, methods, "method")),
    )


def _choice(value: Any, allowed: Iterable, field: str) -> str:
    values = [str(a) for a in allowed]
    if not isinstance(value, str) or value not in values:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(values)), field)
    return value


def record_step(
    patient: Patient, channel: str, action: ConsentAction, method: ConsentMethod
) -> Consent | None:
    """Record a step on behalf of whoever makes the request (``user:<id>``, ``api_key:<id>``),
    in the audit trail too; None, recording nothing, when it changes nothing."""
    step = record(patient, channel, action, method, audit.actor())
    if step is not None:
        audit.record(f"consent.{action}", patient.id)
    return step


# --- JSON -------------------------------------------------------------------------------------


def state_json(state: ConsentState) -> dict[str, Any]:
    return {
        "status": state.status,
        "at": state.at.isoformat() if state.at else None,
        "method": state.method,
    }


def step_json(step: Consent) -> dict[str, Any]:
    return {
        "id": str(step.id),
        "channel": step.channel,
        "action": str(step.action),
        "method": str(step.method),
        "actor": step.actor,
        "at": step.at.isoformat(),
    }


def to_json(patient: Patient) -> dict[str, Any]:
    """The state on every channel, and every step, newest first."""
    return {
        "channels": {c: state_json(s) for c, s in states(patient).items()},
        "history": [step_json(step) for step in history(patient)],
    }


# --- plain words ------------------------------------------------------------------------------


def method_labels() -> dict[str, str]:
    """How a step was taken, as said in brackets after it: "Given on 3 March 2026 (paper form)"."""
    return {
        ConsentMethod.FORM: _("form"),
        ConsentMethod.PAPER: _("paper form"),
        ConsentMethod.SMS_REPLY: _("SMS reply"),
        ConsentMethod.LINK: _("link in a message"),
        ConsentMethod.API: _("practice software"),
    }


def staff_method_labels() -> dict[str, str]:
    """The choices staff have to say how the patient gave their"""
    return {
        ConsentMethod.PAPER: _("Paper form signed by the patient"),
        ConsentMethod.FORM: _("Form filled in by the patient"),
    }


def action_labels() -> dict[str, str]:
    return {
        ConsentAction.GIVEN: _("Given"),
        ConsentAction.CONFIRMED: _("Confirmed by the patient"),
        ConsentAction.WITHDRAWN: _("Opted out"),
    }


def sentence(state: ConsentState, double_opt_in: bool = False) -> str:
    """The state in plain words: "Given on 3 March 2026 (paper form)", "Not asked"..."""
    if state.status == "none" or state.at is None:
        return _("Not asked")
    values = {
        "date": format_date(state.at),
        "method": method_labels().get(state.method, state.method),
    }
    if state.status == ConsentAction.WITHDRAWN:
        return _("Opted out on %(date)s (%(method)s)", **values)
    if state.status == ConsentAction.CONFIRMED:
        return _("Confirmed on %(date)s (%(method)s)", **values)
    if double_opt_in:
        return _("Awaiting the patient's confirmation: given on %(date)s (%(method)s)", **values)
    return _("Given on %(date)s (%(method)s)", **values)


def actor_names(steps: Iterable[Consent]) -> dict[str, str]:
    """Who took each step, by name: a staff member, an API key, the patient."""
    ids: dict[str, set[uuid.UUID]] = {"user": set(), "api_key": set()}
    for step in steps:
        kind, _sep, value = step.actor.partition(":")
        if kind in ids:
            with suppress(ValueError):  # an actor written by hand: shown as it is
                ids[kind].add(uuid.UUID(value))
    names = {"patient": _("The patient")}
    if ids["user"]:
        for user_id, name in db.session.execute(
            sa.select(User.id, User.name).where(User.id.in_(ids["user"]))
        ):
            names[f"user:{user_id}"] = name
    if ids["api_key"]:
        for key_id, name in db.session.execute(
            sa.select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(ids["api_key"]))
        ):
            names[f"api_key:{key_id}"] = _("API key %(name)s", name=name)
    return names


def overview(patient: Patient, double_opt_in: bool = False) -> dict[str, Any]:
    """What a staff page shows of a patient's consent: each channel's state in plain words,
    the channels they opted out of, and every step with who took it (the proof)."""
    by_channel = states(patient)
    steps = history(patient)
    return {
        "channels": [
            (channel, state, sentence(state, double_opt_in))
            for channel, state in by_channel.items()
        ],
        "opted_out": [c for c, s in by_channel.items() if s.status == ConsentAction.WITHDRAWN],
        "steps": steps,
        "actors": actor_names(steps),
        "actions": action_labels(),
        "methods": method_labels(),
    }
