"""Centre staff's day and doses given, operators' fill rates, a patient's PDF summary."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from xml.sax.saxutils import escape

import sqlalchemy as sa
from flask_babel import gettext as _

from core.plugin_api import (
    NotFound,
    Patient,
    ValidationError,
    check,
    db,
    format_date,
    format_time,
    utcnow,
)
from plugins.features.vaccination import slots
from plugins.features.vaccination.models import (
    MAX_BATCH,
    Booking,
    BookingStatus,
    Centre,
    Line,
    OpeningHours,
    Vaccine,
)


@dataclass
class Sheet:
    """A centre's day: its doses line by line, its places, and how they were used."""

    lines: list[tuple[Line, list[Booking]]]
    patients: dict[uuid.UUID, Patient]
    vaccines: dict[uuid.UUID, Vaccine]
    places: int
    booked: int
    given: int
    no_shows: int

    @property
    def fill_rate(self) -> float | None:
        return self.booked / self.places if self.places else None


def _between(tenant, first: date, last: date) -> tuple[datetime, datetime]:
    zone = slots.zone(tenant)
    return (
        datetime.combine(first, datetime.min.time(), zone),
        datetime.combine(last + timedelta(days=1), datetime.min.time(), zone),
    )


def day_sheet(tenant, centre: Centre, day: date) -> Sheet:
    """The day's list of ``centre``, per line, with its fill rate and no-shows."""
    start, end = _between(tenant, day, day)
    doses = list(
        db.session.scalars(
            sa.select(Booking)
            .where(
                Booking.centre_id == centre.id,
                Booking.starts_at >= start,
                Booking.starts_at < end,
                Booking.status != BookingStatus.CANCELLED,
            )
            .order_by(Booking.starts_at)
        )
    )
    lines = list(
        db.session.scalars(
            sa.select(Line).where(Line.centre_id == centre.id).order_by(Line.position)
        )
    )
    patient_ids = {d.patient_id for d in doses}
    patients = (
        {p.id: p for p in db.session.scalars(sa.select(Patient).where(Patient.id.in_(patient_ids)))}
        if patient_ids
        else {}
    )
    vaccines = {v.id: v for v in db.session.scalars(sa.select(Vaccine))}
    hours = db.session.scalars(
        sa.select(OpeningHours).where(OpeningHours.centre_id == centre.id, OpeningHours.day == day)
    )
    places = len(slots.starts(tenant, hours, centre.slot_minutes)) * len(lines) * centre.capacity
    return Sheet(
        lines=[(line, [d for d in doses if d.line_id == line.id]) for line in lines],
        patients=patients,
        vaccines=vaccines,
        places=places,
        booked=len(doses),
        given=sum(d.status == BookingStatus.DONE for d in doses),
        no_shows=sum(d.status == BookingStatus.NO_SHOW for d in doses),
    )


def _dose(booking_id: uuid.UUID) -> Booking:
    dose = db.session.scalar(sa.select(Booking).where(Booking.id == booking_id))
    if dose is None or dose.status == BookingStatus.CANCELLED:
        raise NotFound(_("No such booking."))
    return dose


def mark_given(tenant, booking_id: uuid.UUID, batch) -> Booking:
    """Note a dose as given, with the vaccine's batch number.

    :raises ValidationError: on ``batch`` when it is missing or too long."""
    dose = _dose(booking_id)
    number = check.text(batch, "batch", MAX_BATCH)
    if not number:
        raise ValidationError(_("Enter the batch number on the vial."), "batch")
    dose.status, dose.batch = BookingStatus.DONE, number
    dose.given_at = dose.updated_at = utcnow()
    return dose


def mark_no_show(tenant, booking_id: uuid.UUID) -> Booking:
    dose = _dose(booking_id)
    if dose.status == BookingStatus.BOOKED:
        dose.status, dose.updated_at = BookingStatus.NO_SHOW, utcnow()
    return dose


@dataclass(frozen=True)
class Fill:
    centre: Centre
    places: int
    booked: int

    @property
    def rate(self) -> float:
        return self.booked / self.places if self.places else 0.0


def fill_rates(tenant, first: date, last: date) -> list[Fill]:
    """Per centre, the places of days ``first`` to ``last`` and those booked: three
    queries, whatever the number of centres."""
    centres = list(db.session.scalars(sa.select(Centre).order_by(Centre.name)))
    lines = dict(
        db.session.execute(
            sa.select(Line.centre_id, sa.func.count()).group_by(Line.centre_id)
        ).all()
    )
    minutes: dict[uuid.UUID, int] = {}
    for row in db.session.execute(
        sa.select(OpeningHours.centre_id, OpeningHours.opens, OpeningHours.closes).where(
            OpeningHours.day >= first, OpeningHours.day <= last
        )
    ):
        span = (
            datetime.combine(first, row.closes) - datetime.combine(first, row.opens)
        ).total_seconds() // 60
        minutes[row.centre_id] = minutes.get(row.centre_id, 0) + int(span)
    start, end = _between(tenant, first, last)
    booked = dict(
        db.session.execute(
            sa.select(Booking.centre_id, sa.func.count())
            .where(
                Booking.starts_at >= start,
                Booking.starts_at < end,
                Booking.status != BookingStatus.CANCELLED,
            )
            .group_by(Booking.centre_id)
        ).all()
    )
    return [
        Fill(
            c,
            minutes.get(c.id, 0) // c.slot_minutes * lines.get(c.id, 0) * c.capacity,
            booked.get(c.id, 0),
        )
        for c in centres
    ]


BAR, GAP, LABEL, WIDTH = 22, 8, 260, 640


def chart(rates: list[Fill]) -> str:
    """A bar chart of fill rates as SVG (no script, no inline style: attributes only)."""
    height = max(1, len(rates)) * (BAR + GAP) + GAP
    span = WIDTH - LABEL - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" font-family="sans-serif" font-size="13">',
        f"<title>{escape(_('Fill rate per centre'))}</title>",
    ]
    for n, fill in enumerate(rates):
        y = GAP + n * (BAR + GAP)
        bar = round(span * min(fill.rate, 1.0))
        parts += [
            f'<text x="{LABEL - 8}" y="{y + 16}" text-anchor="end" fill="#1a1a1a">'
            f"{escape(fill.centre.name[:36])}</text>",
            f'<rect x="{LABEL}" y="{y}" width="{span}" height="{BAR}" fill="#e6e6e6"/>',
            f'<rect x="{LABEL}" y="{y}" width="{bar}" height="{BAR}" fill="#1d5fa8"/>',
            f'<text x="{LABEL + span + 6}" y="{y + 16}" fill="#1a1a1a">{fill.rate:.0%}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def summary_pdf(tenant, patient: Patient) -> bytes:
    """The patient's doses given (date, vaccine, batch, centre) as a PDF."""
    from fpdf import FPDF  # noqa: PLC0415 - only this page needs it

    doses = list(
        db.session.scalars(
            sa.select(Booking)
            .where(Booking.patient_id == patient.id, Booking.status == BookingStatus.DONE)
            .order_by(Booking.starts_at)
        )
    )
    centres = (
        {
            c.id: c
            for c in db.session.scalars(
                sa.select(Centre).where(Centre.id.in_({d.centre_id for d in doses}))
            )
        }
        if doses
        else {}
    )
    vaccines = {v.id: v for v in db.session.scalars(sa.select(Vaccine))}
    pdf = FPDF()
    pdf.set_title(_("Vaccination summary"))
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, _latin(_("Vaccination summary")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 11)
    born = format_date(patient.birth_date) if patient.birth_date else ""
    pdf.cell(0, 8, _latin(f"{patient.full_name} {born}".strip()), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, _latin(tenant.name), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    if not doses:
        pdf.cell(0, 8, _latin(_("No dose given yet.")), new_x="LMARGIN", new_y="NEXT")
    else:
        with pdf.table(col_widths=(30, 12, 40, 28, 70)) as table:
            table.row(
                [_latin(t) for t in (_("Date"), _("Dose"), _("Vaccine"), _("Batch"), _("Centre"))]
            )
            for d in doses:
                when = d.given_at or d.starts_at
                table.row(
                    [
                        _latin(f"{format_date(when)} {format_time(when)}"),
                        str(d.dose),
                        _latin(vaccines[d.vaccine_id].name),
                        _latin(d.batch or ""),
                        _latin(centres[d.centre_id].name if d.centre_id in centres else ""),
                    ]
                )
    return bytes(pdf.output())


def _latin(text: str) -> str:
    """The PDF's core font writes Latin-1: other characters become their nearest look."""
    return (
        text.replace("\u202f", " ")
        .replace("\u2019", "'")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )
