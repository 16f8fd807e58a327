"""Patients' consents as staff and integrators see and record them: their input checked, each
step they record audited, the state in plain words (pages) or as JSON (API).

The rules themselves (what a step changes, links) are in :mod:`core.consent`.
"""

import uuid
from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Any

import sqlalchemy as sa
from flask_babel import format_date
from flask_babel import gettext as _

from core import audit, consent
from core.db import db
from core.errors import ValidationError
from core.models import ApiKey, Consent, ConsentAction, ConsentMethod, Patient, User

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
    if channel not in consent.CHANNELS:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(consent.CHANNELS)), "channel")
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
    step = consent.record(patient, channel, action, method, audit.actor())
    if step is not None:
        audit.record(f"consent.{action}", patient.id)
    return step


# --- JSON -------------------------------------------------------------------------------------


def state_json(state: consent.ConsentState) -> dict[str, Any]:
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
        "channels": {c: state_json(s) for c, s in consent.states(patient).items()},
        "history": [step_json(step) for step in consent.history(patient)],
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
    """The choices staff have to say how the patient gave their consent."""
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


def sentence(state: consent.ConsentState, double_opt_in: bool = False) -> str:
    """The state in plain words: "Given on 3 March 2026 (paper form)", "Not asked"..."""
    if state.status == "none" or state.at is None:
        return _("Not asked")
    values = {
        "date": format_date(state.at, "long"),
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
    states = consent.states(patient)
    steps = consent.history(patient)
    return {
        "channels": [
            (channel, state, sentence(state, double_opt_in)) for channel, state in states.items()
        ],
        "opted_out": [c for c, s in states.items() if s.status == ConsentAction.WITHDRAWN],
        "steps": steps,
        "actors": actor_names(steps),
        "actions": action_labels(),
        "methods": method_labels(),
    }
