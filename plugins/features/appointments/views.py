"""The staff agenda: a day or a week of appointments per practitioner, and the forms to book,
move, cancel and mark them.

Routes only: parse the form, call :mod:`.service`, render. Times are typed and shown in the
clinic's time zone; the service stores them in UTC.
"""

import uuid
from contextlib import suppress
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_skeleton
from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user

from core.plugin_api import (
    DashboardItem,
    DashboardLine,
    NotFound,
    ValidationError,
    check,
    db,
    find_patient,
    format_date,
    hooks_for,
    plugin_setting,
    practitioners,
    search_patients,
)
from plugins.features.appointments import grid, service
from plugins.features.appointments.models import AppointmentStatus

STATIC = Path(__file__).resolve().parent / "static"

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
        day = check.day(source.get("date"), "date")
    except ValidationError:
        day = None
    day = day or service.local_date(g.tenant, service.now())
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
    return _asset("agenda.css", "text/css")


@bp.get("/agenda/agenda.js")
def script():
    """The agenda's script: dragging and moving by keyboard, booking a slot in place (the
    page works without it)."""
    return _asset("agenda.js", "text/javascript")


def _asset(name: str, mimetype: str) -> Response:
    return Response(
        (STATIC / name).read_bytes(), mimetype=mimetype, headers={"Cache-Control": "no-cache"}
    )


def _agenda(
    error: ValidationError | None = None,
    failed: uuid.UUID | None = None,
    status=200,
    errors: dict[str, ValidationError] | None = None,
):
    """Render the agenda; ``errors`` (by field) belong to the booking form, ``error`` to
    the move form of the appointment ``failed``."""
    tenant = g.tenant
    view, day = _shown()
    days = _days(view, day)
    team = practitioners()
    practitioner_id = _optional_uuid(request.values.get("practitioner"))
    if view == "week" and practitioner_id is None and team:
        practitioner_id = team[0].id  # a week is one practitioner's
    start = service.start_of_day(tenant, days[0])
    end = service.start_of_day(tenant, days[-1] + timedelta(days=1))
    rows, _total = service.list_between(start, end, practitioner_id=practitioner_id)

    shown = [p for p in team if practitioner_id in (None, p.id)]
    for appointment in rows:  # a deactivated practitioner's appointments stay visible
        if appointment.practitioner not in shown:
            shown.append(appointment.practitioner)
    if view == "week":
        columns = [grid.Column(p, d, _day_label(d, "MMMEd")) for p in shown[:1] for d in days]
    else:
        columns = [grid.Column(p, day, p.name) for p in shown]
    clock = lambda at: service.clock(tenant, at)  # noqa: E731 - the page's one formatter
    time_rows = grid.build(tenant, columns, rows, service.now() - service.GRACE, clock)

    query = request.values.get("q", "").strip()
    found, _count = search_patients(query)
    submitted = _booking_defaults() | (request.form.to_dict() if errors else {})
    chosen = submitted.get("patient_id")
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
        columns=columns,
        time_rows=time_rows,
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
        errors=errors or {},
        move_error=error if failed is not None else None,
        failed=failed,
        failed_shown=any(a.id == failed for a in rows),
        submitted=submitted,
        clock=clock,
        local=lambda at: at.astimezone(ZoneInfo(tenant.timezone)),
        day_label=_day_label,
        full_date=lambda day: format_date(day, weekday=True),
        actions=_actions(tenant, rows),
    )
    db.session.commit()  # the audits of the searches
    return page, status


def _actions(tenant, rows) -> dict[uuid.UUID, list]:
    """The buttons other features add to each appointment (``relais_appointment_actions``)."""
    user = current_user._get_current_object()
    hook = hooks_for(tenant).relais_appointment_actions
    found = {}
    for appointment in rows:
        if appointment.status == AppointmentStatus.CANCELLED:
            continue
        items = [
            item
            for answer in hook(tenant=tenant, user=user, appointment=appointment)
            for item in answer or ()
            if not item.roles or user.role in item.roles
        ]
        if items:
            found[appointment.id] = items
    return found


def _booking_defaults() -> dict[str, str]:
    """What a free slot of the grid fills the booking form with (``?slot=2026-03-30T09:15``
    and ``&with=<practitioner>``): the page works this way without JavaScript."""
    try:
        at = datetime.fromisoformat(request.args.get("slot", ""))
    except ValueError:
        return {}
    defaults = {"day": at.date().isoformat(), "starts_at": at.strftime("%H:%M")}
    if _optional_uuid(request.args.get("with")):
        defaults["practitioner_id"] = request.args["with"]
    return defaults


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


# --- the home page's card ---------------------------------------------------------------------

SHOWN_TODAY = 8  # the card's lines: the appointments still to come; the agenda shows the rest


def today_card(tenant, day: date) -> DashboardItem:
    """Today's appointments for the home page: how many, and the next ones with their
    confirmation state (not confirmed in red: the patient may be called)."""
    start = service.start_of_day(tenant, day)
    end = service.start_of_day(tenant, day + timedelta(days=1))
    active = frozenset(s for s in AppointmentStatus if s != AppointmentStatus.CANCELLED)
    # The query alone, unaudited: the home page shows who comes today, as the reminders'
    # jobs read it; the agenda's reads are audited.
    rows = list(db.session.scalars(service.between(start, end, statuses=active)))
    total = len(rows)
    current = service.now()
    coming = [a for a in rows if a.ends_at > current] or rows
    labels = status_labels()
    tones = {AppointmentStatus.CONFIRMED: "ok", AppointmentStatus.BOOKED: "attention"}
    lines = tuple(
        DashboardLine(
            text=_(
                "%(time)s %(patient)s with %(practitioner)s",
                time=service.clock(tenant, a.starts_at),
                patient=a.patient.full_name,
                practitioner=a.practitioner.name,
            ),
            state=_("Not confirmed") if a.status == AppointmentStatus.BOOKED else labels[a.status],
            url=url_for("patients.view", patient_id=a.patient_id),
            tone=tones.get(a.status, ""),
        )
        for a in coming[:SHOWN_TODAY]
    )
    return DashboardItem(
        title=_("Today's appointments"),
        count=total,
        url=url_for("appointments.agenda", view="day", date=day.isoformat()),
        lines=lines,
        empty=_("No appointment today."),
        order=10,
    )


# --- booking ----------------------------------------------------------------------------------


@bp.post("/agenda/appointments")
def book():
    form = request.form
    data: dict[str, Any] = {
        "patient_id": form.get("patient_id", ""),
        "practitioner_id": form.get("practitioner_id", ""),
        "type": form.get("type", ""),
        "location": form.get("location", ""),
        "reason": form.get("reason", ""),
    }
    errors: dict[str, ValidationError] = {}
    for name in ("starts_at", "ends_at"):  # the day and times typed, in the clinic's zone
        if name == "ends_at" and not form.get("ends_at"):
            data["duration_minutes"] = form.get("duration_minutes", "")
            continue
        try:
            data[name] = service.local_time(g.tenant, form.get("day"), form.get(name), "day", name)
        except ValidationError as exc:
            errors.setdefault(exc.field, exc)
    if "starts_at" not in data:
        data.pop("ends_at", None)
    errors = {**service.problems(g.tenant, data), **errors}
    try:
        if errors:
            raise next(iter(errors.values()))
        appointment = service.create(g.tenant, data)
    except ValidationError as exc:
        db.session.rollback()
        errors.setdefault(exc.field or "", exc)
        status = max(e.status for e in errors.values())
        return _agenda(status=status, errors=errors)
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
