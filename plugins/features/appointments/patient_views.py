"""A patient's appointments on their own page (``/me/``): the card of the ones to come, and
the buttons that confirm or cancel one (``/me/appointments/<id>/confirm``, ``.../cancel``).

The patient acts on their own appointments only, before they start; another's, a past one or
a cancelled one answers 404 and changes nothing.
"""

import uuid

import sqlalchemy as sa
from flask import Blueprint, flash, g, redirect, url_for
from flask_babel import gettext as _

from core.plugin_api import (
    DashboardAction,
    DashboardItem,
    DashboardLine,
    NotFound,
    db,
    format_date,
    patient_required,
)
from plugins.features.appointments import service
from plugins.features.appointments.models import Appointment, AppointmentStatus

bp = Blueprint("appointments_patient", __name__, url_prefix="/me/appointments")
bp.relais_public = True  # a patient's own pages: each view checks their session

OPEN = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
SHOWN = 5


def coming(patient) -> list[Appointment]:
    """The patient's appointments still to come, booked or confirmed, soonest first."""
    query = (
        sa.select(Appointment)
        .where(
            Appointment.patient_id == patient.id,
            Appointment.starts_at > service.now(),
            Appointment.status.in_(OPEN),
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(SHOWN)
    )
    return list(db.session.scalars(query))


def own(patient, appointment_id) -> Appointment | None:
    """One of the patient's appointments, whatever its time and status; None when the id
    is not one of theirs."""
    try:
        wanted = uuid.UUID(str(appointment_id))
    except ValueError:
        return None
    return db.session.scalar(
        sa.select(Appointment).where(Appointment.id == wanted, Appointment.patient_id == patient.id)
    )


def when(tenant, appointment: Appointment) -> str:
    """ "Tuesday 3 March 2026 at 09:30 with Dr Martin", in the reader's language."""
    return _(
        "%(day)s at %(time)s with %(practitioner)s",
        day=format_date(appointment.starts_at, weekday=True, tz=tenant.timezone),
        time=service.clock(tenant, appointment.starts_at),
        practitioner=appointment.practitioner.name,
    )


def card(tenant, patient) -> DashboardItem:
    """The patient's coming appointments, those to confirm counted, each with its buttons."""
    rows = coming(patient)
    lines = []
    for appointment in rows:
        confirmed = appointment.status == AppointmentStatus.CONFIRMED
        actions = (
            ()
            if confirmed
            else (
                DashboardAction(
                    _("Confirm"),
                    url_for("appointments_patient.confirm", appointment_id=appointment.id),
                    primary=True,
                ),
            )
        )
        actions += (
            DashboardAction(
                _("Cancel"), url_for("appointments_patient.cancel", appointment_id=appointment.id)
            ),
        )
        lines.append(
            DashboardLine(
                text=when(tenant, appointment),
                state=_("Confirmed") if confirmed else _("To confirm"),
                tone="ok" if confirmed else "attention",
                actions=actions,
            )
        )
    return DashboardItem(
        title=_("Your coming appointments"),
        count=sum(1 for a in rows if a.status == AppointmentStatus.BOOKED),
        url="",
        lines=tuple(lines),
        empty=_("No appointment to come."),
        order=10,
    )


def _own(appointment_id: uuid.UUID) -> Appointment:
    found = db.session.scalar(
        sa.select(Appointment)
        .where(
            Appointment.id == appointment_id,
            Appointment.patient_id == g.patient.id,
            Appointment.starts_at > service.now(),
            Appointment.status.in_(OPEN),
        )
        .with_for_update()
    )
    if found is None:
        raise NotFound(_("This appointment cannot be changed any more. Call the clinic."))
    return found


@bp.post("/<uuid:appointment_id>/confirm")
@patient_required
def confirm(appointment_id: uuid.UUID):
    appointment = _own(appointment_id)
    if appointment.status != AppointmentStatus.CONFIRMED:
        service.set_status(g.tenant, appointment, AppointmentStatus.CONFIRMED.value)
    db.session.commit()
    flash(
        _("Thank you: your appointment of %(when)s is confirmed.", when=when(g.tenant, appointment))
    )
    return redirect(url_for("patient.home"), 303)


@bp.post("/<uuid:appointment_id>/cancel")
@patient_required
def cancel(appointment_id: uuid.UUID):
    appointment = _own(appointment_id)
    service.cancel(g.tenant, appointment)
    db.session.commit()
    flash(_("Your appointment of %(when)s is cancelled.", when=when(g.tenant, appointment)))
    return redirect(url_for("patient.home"), 303)
