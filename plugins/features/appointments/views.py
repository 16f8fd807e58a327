"""The staff agenda: a day or a week of appointments per practitioner, and the forms to book,
move, cancel and mark them.

Routes only: parse the form, call :mod:`.service`, render. Times are typed and shown in the
clinic's time zone; the service stores them in UTC.
"""

import uuid
from contextlib import suppress
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_skeleton
from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

from core.plugin_api import (
    NotFound,
    ValidationError,
    db,
    find_patient,
    format_date,
    plugin_setting,
    practitioners,
    search_patients,
)
from plugins.features.appointments import service
from plugins.features.appointments.models import Appointment, AppointmentStatus

STYLESHEET = Path(__file__).resolve().parent / "static" / "agenda.css"

bp = Blueprint("appointments", __name__, template_folder="templates")

DURATIONS = (10, 15, 20, 30, 45, 60, 90, 120)
DEFAULT_DURATION = 30
VIEWS = ("week", "day")


def status_labels() -> dict[str, str]:
    return {
        AppointmentStatus.BOOKED: _("Booked"),
        AppointmentStatus.CONFIRMED: _("Confirmed"),
        AppointmentStatus.CANCELLED: _("Cancelled"),
        AppointmentStatus.NO_SHOW: _("No-show"),
        AppointmentStatus.DONE: _("Done"),
    }


# --- the agenda -------------------------------------------------------------------------------


def _shown() -> tuple[str, date]:
    """The view (week or day) and the day asked for; today in the clinic by default."""
    source = request.values
    view = source.get("view") if source.get("view") in VIEWS else "week"
    try:
        day = date.fromisoformat(source.get("date", ""))
    except ValueError:
        day = service.local_date(g.tenant, service.now())
    return view, day


def _days(view: str, day: date) -> list[date]:
    if view == "day":
        return [day]
    # Weeks start on the day the clinic's country starts them (Monday in Europe).
    first_day = Locale.parse(g.tenant.country.locale).first_week_day
    start = day - timedelta(days=(day.weekday() - first_day) % 7)
    return [start + timedelta(days=i) for i in range(7)]


@bp.get("/agenda")
def agenda():
    return _agenda()


@bp.get("/agenda/agenda.css")
def stylesheet():
    """The agenda's own styles (the core's stylesheet knows no feature)."""
    return Response(
        STYLESHEET.read_bytes(), mimetype="text/css", headers={"Cache-Control": "no-cache"}
    )


def _agenda(error: ValidationError | None = None, failed: uuid.UUID | None = None, status=200):
    """Render the agenda; ``error`` belongs to the booking form, or to the move form of the
    appointment ``failed``."""
    tenant = g.tenant
    view, day = _shown()
    days = _days(view, day)
    practitioner_id = _optional_uuid(request.values.get("practitioner"))
    start = service.start_of_day(tenant, days[0])
    end = service.start_of_day(tenant, days[-1] + timedelta(days=1))
    rows, _total = service.list_between(start, end, practitioner_id=practitioner_id)

    team = practitioners()
    shown = [p for p in team if practitioner_id in (None, p.id)]
    for appointment in rows:  # a deactivated practitioner's appointments stay visible
        if appointment.practitioner not in shown:
            shown.append(appointment.practitioner)
    grid: dict[tuple[uuid.UUID, date], list[Appointment]] = {}
    for appointment in rows:
        key = (appointment.practitioner_id, service.local_date(tenant, appointment.starts_at))
        grid.setdefault(key, []).append(appointment)

    query = request.values.get("q", "").strip()
    found, _count = search_patients(query)
    chosen = request.form.get("patient_id") if error and failed is None else None
    if chosen and not any(str(p.id) == chosen for p in found):
        with suppress(NotFound):  # an unknown patient: the error says so already
            found.insert(0, find_patient(chosen))
    step = timedelta(days=len(days))
    page = render_template(
        "appointments/agenda.html",
        view=view,
        day=day,
        days=days,
        today=service.local_date(tenant, service.now()),
        previous=days[0] - step if view == "week" else day - step,
        next=days[0] + step if view == "week" else day + step,
        practitioners=team,
        shown=shown,
        practitioner_id=practitioner_id,
        grid=grid,
        count=len(rows),
        statuses=status_labels(),
        patient_options={str(p.id): _patient_label(p) for p in found},
        practitioner_options={str(p.id): p.name for p in team},
        query=query,
        duration_options={
            str(n): ngettext("%(num)d minute", "%(num)d minutes", n) for n in DURATIONS
        },
        default_duration=DEFAULT_DURATION,
        types=service.declared_types(tenant) or [service.DEFAULT_TYPE],
        address=plugin_setting(tenant, service.PLUGIN, "address") or "",
        error=error if failed is None else None,
        move_error=error if failed is not None else None,
        failed=failed,
        failed_shown=any(a.id == failed for a in rows),
        submitted=request.form if error else {},
        clock=lambda at: service.clock(tenant, at),
        local=lambda at: at.astimezone(ZoneInfo(tenant.timezone)),
        day_label=_day_label,
        full_date=lambda day: format_date(day, weekday=True),
    )
    db.session.commit()  # the audits of the searches
    return page, status


def _patient_label(patient) -> str:
    if patient.birth_date:
        born = format_date(patient.birth_date)
        return _("%(name)s, born %(date)s", name=_name(patient), date=born)
    return _name(patient)


def _name(patient) -> str:
    return f"{patient.last_name} {patient.first_name}"


def _day_label(day: date, skeleton: str = "MMMMEEEEd") -> str:
    return format_skeleton(skeleton, day, locale=get_locale())


def _optional_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _back(**extra):
    """Back to the agenda as it was shown (view, day, practitioner filter)."""
    args = {
        "view": request.form.get("view") or None,
        "date": request.form.get("date") or None,
        "practitioner": request.form.get("practitioner") or None,
        **extra,
    }
    return redirect(url_for(".agenda", **{k: v for k, v in args.items() if v}), 303)


# --- booking ----------------------------------------------------------------------------------


@bp.post("/agenda/appointments")
def book():
    form = request.form
    try:
        starts_at = service.local_time(
            g.tenant, form.get("day"), form.get("starts_at"), "day", "starts_at"
        )
        data: dict[str, Any] = {
            "patient_id": form.get("patient_id", ""),
            "practitioner_id": form.get("practitioner_id", ""),
            "starts_at": starts_at,
            "type": form.get("type", ""),
            "location": form.get("location", ""),
            "reason": form.get("reason", ""),
        }
        if form.get("ends_at"):
            data["ends_at"] = service.local_time(
                g.tenant, form.get("day"), form.get("ends_at"), "day", "ends_at"
            )
        else:
            data["duration_minutes"] = form.get("duration_minutes", "")
        appointment = service.create(g.tenant, data)
    except ValidationError as exc:
        db.session.rollback()
        return _agenda(exc, status=exc.status)
    db.session.commit()
    flash(
        _(
            "Appointment booked: %(patient)s, %(day)s at %(time)s with %(practitioner)s.",
            patient=appointment.patient.full_name,
            day=format_date(appointment.starts_at, weekday=True, tz=g.tenant.timezone),
            time=service.clock(g.tenant, appointment.starts_at),
            practitioner=appointment.practitioner.name,
        )
    )
    return _back(date=service.local_date(g.tenant, appointment.starts_at).isoformat())


# --- changing ---------------------------------------------------------------------------------


@bp.post("/agenda/appointments/<uuid:appointment_id>/move")
def move(appointment_id: uuid.UUID):
    appointment = service.find(appointment_id)
    form = request.form
    try:
        starts_at = service.local_time(
            g.tenant, form.get("day"), form.get("starts_at"), "day", "starts_at"
        )
        service.move(
            g.tenant,
            appointment,
            starts_at,
            practitioner_id=form.get("practitioner_id") or None,
        )
    except ValidationError as exc:
        db.session.rollback()
        return _agenda(exc, failed=appointment_id, status=exc.status)
    db.session.commit()
    flash(
        _(
            "Appointment moved: %(patient)s, %(day)s at %(time)s with %(practitioner)s.",
            patient=appointment.patient.full_name,
            day=format_date(appointment.starts_at, weekday=True, tz=g.tenant.timezone),
            time=service.clock(g.tenant, appointment.starts_at),
            practitioner=appointment.practitioner.name,
        )
    )
    return _back(date=service.local_date(g.tenant, appointment.starts_at).isoformat())


@bp.post("/agenda/appointments/<uuid:appointment_id>/status")
def mark(appointment_id: uuid.UUID):
    """Confirm, mark done or no-show, cancel (the button pressed says which)."""
    appointment = service.find(appointment_id)
    try:
        service.set_status(g.tenant, appointment, request.form.get("status", ""))
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.message)
        return _back()
    db.session.commit()
    flash(
        _(
            "%(patient)s, %(time)s: %(status)s.",
            patient=appointment.patient.full_name,
            time=service.clock(g.tenant, appointment.starts_at),
            status=status_labels()[appointment.status],
        )
    )
    return _back()
