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
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app, url_for
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer

from core.db import db
from core.errors import NotFound
from core.models import Consent, ConsentAction, ConsentMethod, Patient
from core.plugins import hooks_for
from tenants.models import Tenant

NON_ESSENTIAL = "non_essential"
CHANNELS = ("sms", "email", "push", "voice")


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
    latest = db.session.scalars(
        sa.select(Consent)
        .where(
            Consent.patient_id == patient.id,
            Consent.channel == channel,
            Consent.purpose == purpose,
        )
        .order_by(Consent.at.desc(), Consent.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return ConsentState()
    return ConsentState(str(latest.action), latest.at, str(latest.method))


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
    return url_for("consent.page", tenant=tenant.slug, token=token, _external=True)


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
