"""Pages: patients booking their doses (``/me/vaccination``, a patient session), centre
staff's day per line (``/vaccination``), the CSV import and the fill rates.

Routes only: parse the form, call :mod:`.booking`, :mod:`.importer` or :mod:`.staff`,
render. Times are shown in the clinic's time zone.
"""

import io
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from core.plugin_api import (
    DomainError,
    ValidationError,
    admin_only,
    check,
    db,
    patient_required,
    record_audit,
    utcnow,
)
from plugins.features.vaccination import booking, importer, offered, slots, staff, waitlist
from plugins.features.vaccination.models import Booking, BookingStatus, Centre, Vaccine

STATIC = Path(__file__).resolve().parent / "static"
WEEK = 7

bp = Blueprint("vaccination", __name__, template_folder="templates")
patient_bp = Blueprint("vaccination_patient", __name__, template_folder="templates")
patient_bp.relais_public = True  # patients: each view checks the patient's session


def _asset(name: str, mimetype: str) -> Response:
    return Response(
        (STATIC / name).read_bytes(), mimetype=mimetype, headers={"Cache-Control": "no-cache"}
    )


@patient_bp.get("/me/vaccination/vaccination.css")
def stylesheet():
    """The vaccination pages' own styles."""
    return _asset("vaccination.css", "text/css")


def _id(value, field: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(_("Choose one of the list."), field) from None


def _choices() -> tuple[list[Centre], list[Vaccine]]:
    centres = list(db.session.scalars(sa.select(Centre).order_by(Centre.name)))
    vaccines = list(db.session.scalars(sa.select(Vaccine).order_by(Vaccine.name)))
    return centres, vaccines


# --- patients -----------------------------------------------------------------------------------


@patient_bp.get("/me/vaccination")
@patient_required
def patient_home():
    """The patient's doses, and where to book the next ones."""
    doses = booking.doses_of(g.patient.id)
    centres, vaccines = _choices()
    names = {c.id: c for c in centres}
    shots = {v.id: v for v in vaccines}
    return render_template(
        "vaccination/patient_home.html",
        doses=doses,
        centres=centres,
        vaccines=vaccines,
        centre_of=names,
        vaccine_of=shots,
        BOOKED=BookingStatus.BOOKED,
    )


@patient_bp.route("/me/vaccination/book", methods=["GET", "POST"])
@patient_required
def patient_book():
    """Three steps on one page: the dose-1 slot, then a dose-2 slot inside its window, then
    both booked at once."""
    values = request.values
    error = None
    try:
        where = booking.centre(_id(values.get("centre"), "centre"))
        shot = booking.vaccine(_id(values.get("vaccine"), "vaccine"))
    except DomainError as exc:
        centres, vaccines = _choices()
        return render_template(
            "vaccination/patient_home.html",
            doses=booking.doses_of(g.patient.id),
            centres=centres,
            vaccines=vaccines,
            centre_of={c.id: c for c in centres},
            vaccine_of={v.id: v for v in vaccines},
            BOOKED=BookingStatus.BOOKED,
            error=exc,
        ), 422
    first = None
    if request.method == "POST":
        try:
            waitlist.release_expired(g.tenant)
            made = booking.book(
                g.tenant,
                g.patient,
                where.id,
                shot.id,
                check.moment(values.get("first"), "first"),
                check.moment(values.get("second"), "second"),
            )
        except DomainError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(
                _("Booked: %(n)d doses of %(vaccine)s.", n=len(made), vaccine=shot.name)
                if len(made) > 1
                else _("Booked: your dose of %(vaccine)s.", vaccine=shot.name)
            )
            return redirect(url_for(".patient_home"))
    try:
        first = check.moment(values.get("first"), "first")
    except DomainError as exc:
        error = error or exc
    today = slots.local_day(g.tenant, utcnow())
    try:
        start = check.day(values.get("from"), "from") or today
    except DomainError:
        start = today
    start = max(start, today)
    if first is None or (error is not None and error.field == "first"):
        shown = offered.days(
            g.tenant, where, shot.id, start, start + timedelta(days=2 * WEEK), "first"
        )
        step, window = "first", None
    else:
        window = booking.window(shot, slots.local_day(g.tenant, first))
        two = len(booking.doses_of(g.patient.id, shot.id)) + 1 < shot.doses
        begin = max(window.first, start if values.get("from") else window.first)
        shown = (
            offered.days(
                g.tenant,
                where,
                shot.id,
                begin,
                min(begin + timedelta(days=2 * WEEK), window.last),
                "second",
            )
            if two
            else []
        )
        start = begin
        step = "second" if two else "confirm"
    status = 422 if error is not None else 200
    return render_template(
        "vaccination/patient_book.html",
        centre=where,
        vaccine=shot,
        step=step,
        first=first,
        window=window,
        days=shown,
        start=start,
        next_start=offered.after(shown, start, WEEK),
        error=error,
    ), status


@patient_bp.post("/me/vaccination/<uuid:series_id>/cancel")
@patient_required
def patient_cancel(series_id: uuid.UUID):
    freed = booking.cancel(g.tenant, g.patient, series_id)
    waitlist.offer_freed(g.tenant, freed)
    db.session.commit()
    flash(_("Cancelled.") if freed else _("Nothing left to cancel in this booking."))
    return redirect(url_for(".patient_home"))


@patient_bp.route("/me/vaccination/dose/<uuid:booking_id>/move", methods=["GET", "POST"])
@patient_required
def patient_move(booking_id: uuid.UUID):
    """Another slot for one dose, inside the window the other doses leave it."""
    dose = db.session.scalar(
        sa.select(Booking).where(Booking.id == booking_id, Booking.patient_id == g.patient.id)
    )
    if dose is None or dose.status != BookingStatus.BOOKED:
        return render_template("error.html", status=404, message=_("No such booking.")), 404
    error = None
    if request.method == "POST":
        try:
            booking.move(
                g.tenant,
                g.patient,
                dose.id,
                check.moment(request.form.get("starts_at"), "starts_at"),
            )
        except DomainError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Moved."))
            return redirect(url_for(".patient_home"))
    where = db.session.get(Centre, (g.tenant.id, dose.centre_id))
    shot = db.session.get(Vaccine, (g.tenant.id, dose.vaccine_id))
    others = [b for b in booking.doses_of(g.patient.id, shot.id) if b.id != dose.id]
    today = slots.local_day(g.tenant, utcnow())
    first, last = today, today + timedelta(days=4 * WEEK)
    before = [b for b in others if b.dose < dose.dose]
    after = [b for b in others if b.dose > dose.dose]
    if before:
        w = booking.window(shot, slots.local_day(g.tenant, before[-1].starts_at))
        first, last = max(first, w.first), w.last
    if after:
        lowest = slots.local_day(g.tenant, after[0].starts_at)
        last = min(last, lowest - timedelta(days=shot.min_interval_days))
        first = max(first, lowest - timedelta(days=shot.max_interval_days))
    first = max(first, today)
    last = min(last, first + timedelta(days=2 * WEEK))
    shown = []
    if first <= last:
        shown = offered.days(g.tenant, where, shot.id, first, last, "starts_at")
    return render_template(
        "vaccination/patient_move.html",
        dose=dose,
        centre=where,
        vaccine=shot,
        days=shown,
        error=error,
    ), (422 if error else 200)


@patient_bp.post("/me/vaccination/waitlist")
@patient_required
def waitlist_join():
    """Wait in line for a full centre: the next freed slot is offered by message."""
    try:
        waitlist.join(
            g.tenant,
            g.patient,
            _id(request.form.get("centre"), "centre"),
            _id(request.form.get("vaccine"), "vaccine"),
        )
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message)
    else:
        db.session.commit()
        flash(_("You are on the waitlist: we will send you a message when a slot is free."))
    return redirect(url_for(".patient_home"))


@patient_bp.route("/me/vaccination/waitlist/<uuid:entry_id>", methods=["GET", "POST"])
@patient_required
def waitlist_offer(entry_id: uuid.UUID):
    """A freed slot held for the patient: choose the next dose's slot and book both."""
    error = None
    try:
        entry = waitlist.offered(g.patient, entry_id)
    except DomainError as exc:
        db.session.rollback()
        return render_template("error.html", status=exc.status, message=exc.message), exc.status
    if request.method == "POST":
        try:
            made = waitlist.accept(
                g.tenant, g.patient, entry.id, check.moment(request.form.get("second"), "second")
            )
        except DomainError as exc:
            db.session.rollback()
            error = exc
            entry = waitlist.offered(g.patient, entry_id)
        else:
            shot = booking.vaccine(made[0].vaccine_id)
            db.session.commit()
            flash(
                _("Booked: %(n)d doses of %(vaccine)s.", n=len(made), vaccine=shot.name)
                if len(made) > 1
                else _("Booked: your dose of %(vaccine)s.", vaccine=shot.name)
            )
            return redirect(url_for(".patient_home"))
    where = booking.centre(entry.centre_id)
    shot = booking.vaccine(entry.vaccine_id)
    window = booking.window(shot, slots.local_day(g.tenant, entry.slot_at))
    given = len(booking.doses_of(g.patient.id, shot.id))
    shown = (
        offered.days(
            g.tenant,
            where,
            shot.id,
            window.first,
            min(window.last, window.first + timedelta(days=2 * WEEK)),
            "second",
        )
        if given + 1 < shot.doses
        else []
    )
    db.session.commit()  # the row lock of the offer
    return render_template(
        "vaccination/waitlist_offer.html",
        entry=entry,
        centre=where,
        vaccine=shot,
        window=window,
        days=shown,
        two=given + 1 < shot.doses,
        error=error,
    ), (422 if error else 200)


@patient_bp.get("/me/vaccination/summary.pdf")
@patient_required
def patient_summary():
    """The doses given, as a PDF the patient keeps."""
    data = staff.summary_pdf(g.tenant, g.patient)
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="vaccination.pdf"'},
    )


# --- staff --------------------------------------------------------------------------------------


@bp.get("/vaccination")
def staff_day():
    """A centre's day, line by line: who comes when, for which dose; fill rate, no-shows."""
    centres, _vaccines = _choices()
    try:
        day = check.day(request.args.get("date"), "date")
    except ValidationError:
        day = None
    day = day or slots.local_day(g.tenant, utcnow())
    chosen = None
    if request.args.get("centre"):
        chosen = next((c for c in centres if str(c.id) == request.args["centre"]), None)
    chosen = chosen or (centres[0] if centres else None)
    sheet = staff.day_sheet(g.tenant, chosen, day) if chosen else None
    if sheet is not None:
        record_audit("vaccination.day.read", chosen.id, detail=day.isoformat())
        db.session.commit()
    return render_template(
        "vaccination/staff_day.html", centres=centres, centre=chosen, day=day, sheet=sheet
    )


@bp.post("/vaccination/dose/<uuid:booking_id>/given")
def staff_given(booking_id: uuid.UUID):
    try:
        dose = staff.mark_given(g.tenant, booking_id, request.form.get("batch"))
    except ValidationError as exc:  # another clinic's or no dose: NotFound, a 404
        db.session.rollback()
        flash(exc.message)
        return redirect(request.referrer or url_for(".staff_day"))
    db.session.commit()
    flash(_("Dose %(n)d marked as given.", n=dose.dose))
    return redirect(
        url_for(
            ".staff_day",
            centre=dose.centre_id,
            date=slots.local_day(g.tenant, dose.starts_at).isoformat(),
        )
    )


@bp.post("/vaccination/dose/<uuid:booking_id>/no-show")
def staff_no_show(booking_id: uuid.UUID):
    dose = staff.mark_no_show(g.tenant, booking_id)
    db.session.commit()
    flash(_("Marked as not come."))
    return redirect(
        url_for(
            ".staff_day",
            centre=dose.centre_id,
            date=slots.local_day(g.tenant, dose.starts_at).isoformat(),
        )
    )


@bp.get("/vaccination/fill")
def staff_fill():
    """Fill rates per centre over the coming days, as a chart drawn on the server."""
    try:
        first = check.day(request.args.get("from"), "from")
    except ValidationError:
        first = None
    first = first or slots.local_day(g.tenant, utcnow())
    rates = staff.fill_rates(g.tenant, first, first + timedelta(days=WEEK - 1))
    return render_template(
        "vaccination/staff_fill.html",
        rates=rates,
        first=first,
        last=first + timedelta(days=WEEK - 1),
    )


@bp.get("/vaccination/fill.svg")
def staff_fill_chart():
    try:
        first = check.day(request.args.get("from"), "from")
    except ValidationError:
        first = None
    first = first or slots.local_day(g.tenant, utcnow())
    rates = staff.fill_rates(g.tenant, first, first + timedelta(days=WEEK - 1))
    return Response(staff.chart(rates), mimetype="image/svg+xml")


@bp.route("/vaccination/import", methods=["GET", "POST"])
@admin_only
def staff_import():
    """Upload a CSV of centres and opening days: all rows, or none with every wrong row."""
    report = None
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            report = importer.Report(errors=[importer.RowError(0, "file", _("Choose a CSV file."))])
        else:
            try:
                text = io.TextIOWrapper(upload.stream, encoding="utf-8-sig")
                report = importer.run(g.tenant, importer.read(text))
            except (UnicodeDecodeError, ValueError):
                report = importer.Report(
                    errors=[importer.RowError(0, "file", _("This is not a CSV file in UTF-8."))]
                )
        if report.errors:
            db.session.rollback()
        else:
            db.session.commit()
            flash(
                _(
                    "Imported: %(centres)d centres, %(openings)d opening days.",
                    centres=report.centres,
                    openings=report.openings,
                )
            )
            return redirect(url_for(".staff_import"))
    status = 422 if report and report.errors else 200
    return render_template(
        "vaccination/staff_import.html", report=report, columns=importer.COLUMNS
    ), status
