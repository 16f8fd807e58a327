"""Access links: how a patient opens a session of their own, until they can sign up.

Staff send a patient a link through the outbox (SMS, else e-mail). The link is signed with the
app's secret key for one clinic (another clinic's link does not verify), expires after 24
hours, and opens one session, once: its random nonce is recorded when used. The token is
never logged; messages store it encrypted, like any content.
"""

import secrets
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from core.clinic.models import AccessLinkUse, Patient
from core.config import external_url
from core.db import db, utcnow
from core.delivery import outbox
from core.delivery.models import Message
from core.errors import NotFound, ValidationError

MAX_AGE = timedelta(hours=24)
CHANNELS = ("sms", "email")


def _serializer(tenant) -> URLSafeTimedSerializer:
    # The clinic is in the salt: a link signed for one clinic is no link on another.
    return URLSafeTimedSerializer(current_app.secret_key, salt=f"relais.patient-access.{tenant.id}")


def make_token(tenant, patient: Patient) -> str:
    """A new access token for ``patient`` (a random nonce makes each one single-use)."""
    return _serializer(tenant).dumps({"p": str(patient.id), "n": secrets.token_hex(16)})


def send_access_link(tenant, patient: Patient) -> Message:
    """Put an access link to ``patient`` in the outbox, in their language (SMS, else e-mail).

    :raises ValidationError: on ``phone`` when the patient has neither a phone nor an e-mail.
    """
    if not patient.phone and not patient.email:
        raise ValidationError(
            _("Add the patient's mobile phone or e-mail address first: the link goes there."),
            "phone",
        )
    link = external_url("patient.access", token=make_token(tenant, patient))
    with force_locale(patient.language):
        text = _(
            "%(clinic)s: here is your link to your patient page. It works once, within "
            "24 hours: %(link)s",
            clinic=tenant.name,
            link=link,
        )
        subject = _("Your link to %(clinic)s", clinic=tenant.name)
    # The texts go in as variables, never as templates: a clinic's name is not Jinja.
    return outbox.send(
        tenant,
        patient,
        "transactional",
        {"text": "{{ text }}", "subject": "{{ subject }}"},
        {"text": text, "subject": subject},
        CHANNELS,
        confidential=True,  # the link opens the patient's page: not for staff eyes
    )


def check_token(tenant, token: str) -> tuple[Patient, str]:
    """The patient a link opens and its nonce, without using it.

    :raises NotFound: with a sentence saying whether the link is invalid, expired or used.
    """
    try:
        data = _serializer(tenant).loads(token, max_age=int(MAX_AGE.total_seconds()))
    except SignatureExpired:
        raise NotFound(
            _("This link has expired. Ask your clinic to send you a new one."), "token"
        ) from None
    except BadSignature:
        raise NotFound(_invalid(), "token") from None
    try:
        patient_id, nonce = uuid.UUID(str(data["p"])), str(data["n"])
    except (KeyError, TypeError, ValueError):
        raise NotFound(_invalid(), "token") from None
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == patient_id))
    if patient is None:
        raise NotFound(_invalid(), "token")
    if db.session.get(AccessLinkUse, (tenant.id, nonce)) is not None:
        raise NotFound(_used(), "token")
    return patient, nonce


def use_token(tenant, token: str) -> Patient:
    """Use a link: the patient it opens a session for. It will not open another.

    :raises NotFound: invalid, expired or already used.
    """
    patient, nonce = check_token(tenant, token)
    # Used links older than any valid one need not be remembered.
    db.session.execute(
        sa.delete(AccessLinkUse).where(AccessLinkUse.used_at < utcnow() - 2 * MAX_AGE)
    )
    db.session.add(AccessLinkUse(tenant_id=tenant.id, nonce=nonce, patient_id=patient.id))
    try:
        db.session.flush()
    except IntegrityError:  # the same link, used at the same moment elsewhere
        db.session.rollback()
        raise NotFound(_used(), "token") from None
    return patient


def _invalid() -> str:
    return _("This link is not valid. Check that you copied all of it.")


def _used() -> str:
    return _("This link was already used. Ask your clinic to send you a new one.")
