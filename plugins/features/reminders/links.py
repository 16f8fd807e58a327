"""The link in each reminder: ``/appointments/r/<token>``, a page to confirm or cancel.

The token is the appointment's id signed with the app's secret for one clinic (another
clinic's link does not verify); it is short, so that the reminder fits in few SMS. It works
until the appointment starts, while the appointment is booked or confirmed.
"""

import base64
import uuid

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, Signer

from core.plugin_api import (
    NotFound,
    db,
    external_url,
    utcnow,
)
from plugins.features.appointments import Appointment


def _signer(tenant) -> Signer:
    return Signer(current_app.secret_key, salt=f"relais.reminders.{tenant.id}")


def token(tenant, appointment_id: uuid.UUID) -> str:
    short = base64.urlsafe_b64encode(appointment_id.bytes).rstrip(b"=")
    return _signer(tenant).sign(short).decode()


def link(tenant, appointment_id: uuid.UUID) -> str:
    """The absolute link to the appointment's page (the clinic's subdomain said outright: a
    worker or webhook has no clinic in ``g``)."""
    return external_url(
        "reminders_link.page", tenant=tenant.slug, token=token(tenant, appointment_id)
    )


def read(tenant, text: str) -> Appointment:
    """The appointment a link stands for, while it can still be confirmed or cancelled.

    :raises NotFound: a link that is not this clinic's, or an appointment started or ended.
    """
    try:
        short = _signer(tenant).unsign(text.encode())
        appointment_id = uuid.UUID(bytes=base64.urlsafe_b64decode(short + b"=="))
    except (BadSignature, ValueError):
        raise NotFound(
            _("This link is not valid. Check that you copied all of it."), "token"
        ) from None
    appointment = db.session.scalar(sa.select(Appointment).where(Appointment.id == appointment_id))
    if appointment is None:
        raise NotFound(_("This link is not valid. Check that you copied all of it."), "token")
    if appointment.starts_at <= utcnow():
        raise NotFound(_("This appointment has started: this link no longer works."), "token")
    return appointment
