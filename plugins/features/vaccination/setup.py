"""Vaccines, campaigns, centres and their opening days and stock, as operators set them up
and change them (``relais vaccination add-vaccine`` and ``add-campaign``, the CSV import,
the set-up pages).

A change is checked as a creation is (the same fields, the same limits) and never breaks a
booking made: bookings keep their dates and places; what would leave one without a slot,
a line or a vaccine is refused, naming the field.
"""

import uuid
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext

from core.plugin_api import (
    Conflict,
    NotFound,
    ValidationError,
    attribute_labels,
    check,
    db,
    insert_many,
    new_id,
    utcnow,
)
from plugins.features.vaccination import offered
from plugins.features.vaccination.models import (
    MAX_ADDRESS,
    MAX_CODE,
    MAX_NAME,
    Booking,
    BookingStatus,
    Campaign,
    Centre,
    CentreKind,
    Line,
    OpeningHours,
    SlotCount,
    Stock,
    Vaccine,
    WaitlistEntry,
    WaitStatus,
)

MAX_DAYS = 3650
MAX_AGE = 130
MAX_LINES = 500
MAX_CAPACITY = 1000  # places per line and slot
MAX_SLOT_MINUTES = 480
MAX_DOSES = 1_000_000  # doses of a vaccine a centre has for a day
WAITING = (WaitStatus.WAITING, WaitStatus.OFFERED)
# A vaccine's fields, as the set-up page and add_vaccine() name them.
VACCINE_FIELDS = (
    "code",
    "name",
    "doses",
    "min_days",
    "ideal_days",
    "max_days",
    "min_age",
    "max_age",
)


def _required(value, field: str, limit: int) -> str:
    value = check.text(value, field, limit)
    if not value:
        raise ValidationError(_("This field is required."), field)
    return value


def _ages(min_age, max_age) -> tuple[int | None, int | None]:
    low, high = (
        None if a in (None, "") else check.whole_number(a, f, 0, MAX_AGE)
        for a, f in ((min_age, "min_age"), (max_age, "max_age"))
    )
    if low is not None and high is not None and high < low:
        raise ValidationError(_("The highest age must not be below the lowest."), "max_age")
    return low, high


def _unused_code(model, code: str, own: uuid.UUID | None, message: str) -> None:
    query = sa.select(model.id).where(model.code == code)
    if own is not None:
        query = query.where(model.id != own)
    if db.session.scalar(query):
        raise ValidationError(message, "code")


def _vaccine_values(
    code, name, doses, min_days, ideal_days, max_days, min_age, max_age, own=None
) -> dict:
    code = _required(code, "code", MAX_CODE).lower()
    name = _required(name, "name", MAX_NAME)
    _unused_code(Vaccine, code, own, _("A vaccine has this code already."))
    doses = check.whole_number(doses, "doses", 1, 10)
    low = check.whole_number(min_days if min_days not in (None, "") else 0, "min_days", 0, MAX_DAYS)
    ideal = check.whole_number(
        low if ideal_days in (None, "") else ideal_days, "ideal_days", low, MAX_DAYS
    )
    high = check.whole_number(
        ideal if max_days in (None, "") else max_days, "max_days", ideal, MAX_DAYS
    )
    ages = _ages(min_age, max_age)
    return {
        "code": code,
        "name": name,
        "doses": doses,
        "min_interval_days": low,
        "ideal_interval_days": ideal,
        "max_interval_days": high,
        "min_age": ages[0],
        "max_age": ages[1],
    }


def add_vaccine(
    code: str,
    name: str,
    doses: int,
    min_days: int = 0,
    ideal_days: int | None = None,
    max_days: int | None = None,
    min_age: int | None = None,
    max_age: int | None = None,
) -> Vaccine:
    """A vaccine and its dose schedule, in the current clinic (the caller commits).

    :raises ValidationError: naming the field (``code``, ``name``, ``doses``, ``min_days``,
        ``ideal_days``, ``max_days``, ``min_age``, ``max_age``)."""
    vaccine = Vaccine(
        **_vaccine_values(code, name, doses, min_days, ideal_days, max_days, min_age, max_age)
    )
    db.session.add(vaccine)
    db.session.flush()
    return vaccine


def change_vaccine(vaccine: Vaccine, **fields) -> Vaccine:
    """Change a vaccine and its schedule, checked as :func:`add_vaccine` checks a new one
    (the caller commits). Bookings made keep their dates; the new interval applies to
    doses booked or moved from now on."""
    values = _vaccine_values(**{k: fields.get(k) for k in VACCINE_FIELDS}, own=vaccine.id)
    for key, value in values.items():
        setattr(vaccine, key, value)
    db.session.flush()
    return vaccine


def bookings_ahead(**where) -> int:
    """Doses booked and not given yet from now on, e.g. ``bookings_ahead(vaccine_id=...)``."""
    return db.session.scalar(
        sa.select(sa.func.count(Booking.id)).where(
            Booking.status == BookingStatus.BOOKED,
            Booking.starts_at > utcnow(),
            *(getattr(Booking, k) == v for k, v in where.items()),
        )
    )


def _refuse_if_used(message_booked: str, message_waiting: str, **where) -> None:
    if db.session.scalar(sa.select(Booking.id).filter_by(**where).limit(1)):
        raise Conflict(message_booked, "delete")
    waiting = sa.select(WaitlistEntry.id).filter_by(**where)
    if db.session.scalar(waiting.where(WaitlistEntry.status.in_(WAITING)).limit(1)):
        raise Conflict(message_waiting, "delete")


def delete_vaccine(vaccine: Vaccine) -> None:
    """Delete a vaccine nobody was booked for, with its stock (the caller commits).

    :raises Conflict: on ``delete`` when a dose was booked or given, a patient waits for it
        or a campaign names it: bookings and the record of doses given depend on it."""
    _refuse_if_used(
        _("Doses of this vaccine were booked or given: it cannot be deleted."),
        _("Patients wait for this vaccine: it cannot be deleted."),
        vaccine_id=vaccine.id,
    )
    if db.session.scalar(sa.select(Campaign.id).where(Campaign.vaccine_id == vaccine.id).limit(1)):
        raise Conflict(_("A campaign names this vaccine: change the campaign first."), "delete")
    db.session.execute(sa.delete(WaitlistEntry).where(WaitlistEntry.vaccine_id == vaccine.id))
    db.session.execute(sa.delete(Stock).where(Stock.vaccine_id == vaccine.id))
    db.session.delete(vaccine)
    db.session.flush()


# --- campaigns ---------------------------------------------------------------------------------


def _campaign_values(name, vaccine_code, min_age, max_age, attributes) -> dict:
    name = _required(name, "name", MAX_NAME)
    vaccine_id = None
    if vaccine_code:
        vaccine_id = db.session.scalar(
            sa.select(Vaccine.id).where(Vaccine.code == str(vaccine_code).lower())
        )
        if vaccine_id is None:
            raise ValidationError(
                _("Unknown vaccine: %(code)s.", code=str(vaccine_code)[:MAX_CODE]), "vaccine"
            )
    known = attribute_labels()
    if [a for a in attributes if a not in known]:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(known)), "attributes")
    ages = _ages(min_age, max_age)
    return {
        "name": name,
        "vaccine_id": vaccine_id,
        "min_age": ages[0],
        "max_age": ages[1],
        "attributes": list(dict.fromkeys(attributes)),
    }


def add_campaign(
    name: str,
    vaccine_code: str | None = None,
    min_age: int | None = None,
    max_age: int | None = None,
    attributes: list[str] | tuple[str, ...] = (),
    active: bool = True,
) -> Campaign:
    """A campaign, open unless ``active`` is False: who restricted centres take (the caller
    commits).

    :raises ValidationError: naming the field (``name``, ``vaccine``, ``min_age``,
        ``max_age``, ``attributes``)."""
    campaign = Campaign(
        **_campaign_values(name, vaccine_code, min_age, max_age, attributes), active=bool(active)
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign


def change_campaign(
    campaign: Campaign,
    name: str,
    vaccine_code: str | None,
    min_age,
    max_age,
    attributes: list[str] | tuple[str, ...],
    active: bool,
) -> Campaign:
    """Change who a campaign takes, or close it (``active`` False), checked as
    :func:`add_campaign` checks a new one (the caller commits). It applies to bookings made
    from now on: those made stay."""
    values = _campaign_values(name, vaccine_code, min_age, max_age, attributes)
    for key, value in {**values, "active": bool(active)}.items():
        setattr(campaign, key, value)
    db.session.flush()
    return campaign


# --- centres -----------------------------------------------------------------------------------


def centre_values(name, kind, address, restricted, lines, capacity, slot_minutes) -> dict:
    """A centre's fields, checked: the same limits for the import and the set-up page.

    :raises ValidationError: naming the field."""
    kind = str(kind or "").strip().lower()
    if kind not in {k.value for k in CentreKind}:
        raise ValidationError(
            _("One of: %(kinds)s.", kinds=", ".join(k.value for k in CentreKind)), "kind"
        )
    return {
        "name": _required(name, "name", MAX_NAME),
        "kind": kind,
        "address": check.text(address, "address", MAX_ADDRESS),
        "restricted": bool(restricted),
        "lines": check.whole_number(lines, "lines", 1, MAX_LINES),
        "capacity": check.whole_number(capacity, "capacity", 1, MAX_CAPACITY),
        "slot_minutes": check.whole_number(slot_minutes, "slot_minutes", 1, MAX_SLOT_MINUTES),
    }


def line_count(centre: Centre) -> int:
    return db.session.scalar(sa.select(sa.func.count(Line.id)).where(Line.centre_id == centre.id))


def add_centre(tenant, code, **fields) -> Centre:
    """A centre and its lines, checked as the import checks one (the caller commits). Its
    opening days and stock come from the CSV import, which adds them to a centre it knows.

    :raises ValidationError: naming the field (``code``, ``name``, ``kind``, ``address``,
        ``lines``, ``capacity``, ``slot_minutes``)."""
    code = _required(code, "code", MAX_CODE)
    _unused_code(Centre, code, None, _("A centre has this code already."))
    values = centre_values(**fields)
    lines = values.pop("lines")
    centre = Centre(code=code, **values)
    db.session.add(centre)
    db.session.flush()
    _set_lines(tenant, centre, lines)
    return centre


def change_centre(tenant, centre: Centre, code, **fields) -> Centre:
    """Change a centre, checked as the import checks a new one (the caller commits).

    Bookings keep their slots: the slot length cannot change while doses are booked ahead;
    fewer lines or places are refused where a slot has more patients booked than it would
    hold, and a line with bookings is never removed.

    :raises ValidationError: naming the field (``code``, ``name``, ``kind``, ``address``,
        ``lines``, ``capacity``, ``slot_minutes``)."""
    code = _required(code, "code", MAX_CODE)
    _unused_code(Centre, code, centre.id, _("A centre has this code already."))
    values = centre_values(**fields)
    if values["slot_minutes"] != centre.slot_minutes and bookings_ahead(centre_id=centre.id):
        raise ValidationError(
            _("Doses are booked at this centre: its slot length cannot change until they are."),
            "slot_minutes",
        )
    lines = values.pop("lines")
    _set_lines(tenant, centre, lines)
    places = lines * values["capacity"]
    fuller = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(SlotCount)
        .where(
            SlotCount.centre_id == centre.id,
            SlotCount.starts_at > utcnow(),
            SlotCount.booked > places,
        )
    )
    if fuller:
        raise ValidationError(
            _(
                "%(n)d slots have more patients booked than %(places)d places: "
                "keep more lines or places.",
                n=fuller,
                places=places,
            ),
            "capacity",
        )
    db.session.execute(
        sa.update(SlotCount)
        .where(SlotCount.centre_id == centre.id, SlotCount.starts_at > utcnow())
        .values(capacity=places)
        .execution_options(synchronize_session=False)
    )
    centre.code = code
    for key, value in values.items():
        setattr(centre, key, value)
    db.session.flush()
    return centre


def _set_lines(tenant, centre: Centre, wanted: int) -> None:
    have = list(
        db.session.scalars(
            sa.select(Line).where(Line.centre_id == centre.id).order_by(Line.position)
        )
    )
    if wanted > len(have):
        top = have[-1].position if have else 0
        insert_many(
            Line.__table__,
            [
                {
                    "tenant_id": tenant.id,
                    "id": new_id(),
                    "centre_id": centre.id,
                    "position": top + n,
                    "name": str(top + n),
                }
                for n in range(1, wanted - len(have) + 1)
            ],
        )
        return
    gone = [line.id for line in have[wanted:]]
    if not gone:
        return
    if db.session.scalar(sa.select(Booking.id).where(Booking.line_id.in_(gone)).limit(1)):
        raise ValidationError(
            _("Patients are booked on the lines you would remove: keep %(n)d lines.", n=len(have)),
            "lines",
        )
    db.session.execute(sa.delete(Line).where(Line.id.in_(gone)))


def delete_centre(centre: Centre) -> None:
    """Delete a centre nobody was booked at, with its lines, opening days and stock (the
    caller commits). :raises Conflict: on ``delete`` when a dose was booked or given there
    or a patient waits for it."""
    _refuse_if_used(
        _("Doses were booked or given at this centre: it cannot be deleted."),
        _("Patients wait for a place at this centre: it cannot be deleted."),
        centre_id=centre.id,
    )
    db.session.delete(centre)  # lines, opening days, stock and counters go with it (CASCADE)
    db.session.flush()


# --- opening days and stock ---------------------------------------------------------------------


def clock(value, field: str) -> time:
    """A time of day, HH:MM. :raises ValidationError: on ``field``."""
    text = str(value if value is not None else "").strip()
    try:
        found = time.fromisoformat(text) if 0 < len(text) <= 8 else None
    except ValueError:
        found = None
    if found is None or found.tzinfo is not None:
        raise ValidationError(_("Use the form HH:MM."), field)
    return found


def _day(value, today: date | None) -> date:
    found = check.day(value, "day")
    if found is None:
        raise ValidationError(_("Use the form YYYY-MM-DD."), "day")
    if today is not None and found < today:
        raise ValidationError(_("This day has passed: choose today or a later day."), "day")
    return found


def opening_values(day, opens, closes, today: date | None = None) -> dict:
    """An opening's day and hours, checked: the same for the import and the set-up page,
    which also refuses a day before ``today`` (the clinic's).

    :raises ValidationError: naming the field (``day``, ``opens``, ``closes``)."""
    found = _day(day, today)
    start, end = clock(opens, "opens"), clock(closes, "closes")
    if end <= start:
        raise ValidationError(_("The closing time must be after the opening time."), "closes")
    return {"day": found, "opens": start, "closes": end}


def doses_value(doses) -> int:
    """Doses of a vaccine for a day. :raises ValidationError: on ``doses``."""
    return check.whole_number(doses, "doses", 0, MAX_DOSES)


def openings_ahead(centre: Centre, today: date, limit: int) -> list:
    """The centre's next ``limit`` openings from ``today``: rows of ``day``, ``opens``,
    ``closes``, by time."""
    return list(
        db.session.execute(
            sa.select(OpeningHours.day, OpeningHours.opens, OpeningHours.closes)
            .where(OpeningHours.centre_id == centre.id, OpeningHours.day >= today)
            .order_by(OpeningHours.day, OpeningHours.opens)
            .limit(limit)
        )
    )


def stock_of(centre: Centre, first: date, last: date) -> dict[tuple, tuple[int, int]]:
    """The centre's stock from day ``first`` to ``last``: ``(day, vaccine_id)`` to its doses
    and those booked."""
    rows = db.session.execute(
        sa.select(Stock.day, Stock.vaccine_id, Stock.doses, Stock.booked).where(
            Stock.centre_id == centre.id, Stock.day >= first, Stock.day <= last
        )
    )
    return {(r.day, r.vaccine_id): (r.doses, r.booked) for r in rows}


def opening(centre: Centre, day, opens) -> OpeningHours:
    """The centre's opening of ``day`` (YYYY-MM-DD) at ``opens`` (HH:MM), locked until the
    transaction ends. :raises NotFound:; ValidationError on a malformed day or time."""
    day, opens = check.day(day, "day"), clock(opens, "opens")
    found = db.session.scalar(
        sa.select(OpeningHours)
        .where(
            OpeningHours.centre_id == centre.id,
            OpeningHours.day == day,
            OpeningHours.opens == opens,
        )
        .with_for_update()
    )
    if found is None:
        raise NotFound(_("Not found."))
    return found


def _overlaps(centre: Centre, values: dict, leave_out: time | None = None) -> None:
    query = sa.select(OpeningHours.opens).where(
        OpeningHours.centre_id == centre.id,
        OpeningHours.day == values["day"],
        OpeningHours.opens < values["closes"],
        OpeningHours.closes > values["opens"],
    )
    if leave_out is not None:
        query = query.where(OpeningHours.opens != leave_out)
    if db.session.scalar(query.limit(1)) is not None:
        raise ValidationError(_("The centre is already open at these hours that day."), "opens")


def _refuse_if_booked(tenant, centre: Centre, opening: OpeningHours) -> None:
    """:raises Conflict: when a dose is booked or given, or a place held, in the opening."""
    where = ZoneInfo(tenant.timezone)
    first = datetime.combine(opening.day, opening.opens, where)
    last = datetime.combine(opening.day, opening.closes, where)
    booked = sa.select(Booking.id).where(
        Booking.centre_id == centre.id,
        Booking.starts_at >= first,
        Booking.starts_at < last,
        Booking.status.in_((BookingStatus.BOOKED, BookingStatus.DONE)),
    )
    held = sa.select(WaitlistEntry.id).where(
        WaitlistEntry.centre_id == centre.id,
        WaitlistEntry.status == WaitStatus.OFFERED,
        WaitlistEntry.slot_at >= first,
        WaitlistEntry.slot_at < last,
    )
    if db.session.scalar(booked.limit(1)) or db.session.scalar(held.limit(1)):
        raise Conflict(_("Doses are booked in these hours: move or cancel them first."), "opening")


def add_opening(tenant, centre: Centre, today: date, **fields) -> OpeningHours:
    """Open ``centre`` on a day (``day``, ``opens``, ``closes``), checked as the import
    checks a row, not before ``today`` nor over another opening (the caller commits).

    :raises ValidationError: naming the field (``day``, ``opens``, ``closes``)."""
    values = opening_values(**fields, today=today)
    _overlaps(centre, values)
    added = OpeningHours(centre_id=centre.id, **values)
    db.session.add(added)
    db.session.flush()
    offered.forget(centre.id)
    return added


def change_opening(
    tenant, centre: Centre, was_day, was_opens, today: date, **fields
) -> OpeningHours:
    """Move the opening of ``was_day`` at ``was_opens`` to other hours (``day``, ``opens``,
    ``closes``) when no booking depends on it (the caller commits).

    :raises NotFound: no such opening; :class:`Conflict` on ``opening`` when a dose is
        booked in it; ValidationError naming the field (``day``, ``opens``, ``closes``)."""
    old = opening(centre, was_day, was_opens)
    values = opening_values(**fields, today=today)
    _refuse_if_booked(tenant, centre, old)
    _overlaps(centre, values, leave_out=old.opens if values["day"] == old.day else None)
    db.session.delete(old)  # its key changes: a new row, not an UPDATE of the key
    db.session.flush()
    changed = OpeningHours(centre_id=centre.id, **values)
    db.session.add(changed)
    db.session.flush()
    offered.forget(centre.id)
    return changed


def delete_opening(tenant, centre: Centre, day, opens) -> None:
    """Close the centre at the opening of ``day`` at ``opens``, when no booking depends on
    it (the caller commits). :raises NotFound:; :class:`Conflict` on ``opening``."""
    old = opening(centre, day, opens)
    _refuse_if_booked(tenant, centre, old)
    db.session.delete(old)
    db.session.flush()
    offered.forget(centre.id)


def set_stock(tenant, centre: Centre, vaccine, day, doses, today: date) -> Stock:
    """The doses of a vaccine the centre has on a day (``today`` or later), never fewer than
    those booked (the caller commits).

    :raises ValidationError: naming the field (``vaccine``, ``day``, ``doses``)."""
    code = check.text(vaccine, "vaccine", MAX_CODE).lower()
    vaccine_id = db.session.scalar(sa.select(Vaccine.id).where(Vaccine.code == code))
    if vaccine_id is None:
        raise ValidationError(_("Choose a vaccine of the list."), "vaccine")
    found = _day(day, today)
    doses = doses_value(doses)
    stock = db.session.scalar(
        sa.select(Stock)
        .where(Stock.centre_id == centre.id, Stock.vaccine_id == vaccine_id, Stock.day == found)
        .with_for_update()
    )
    if stock is None:
        stock = Stock(centre_id=centre.id, vaccine_id=vaccine_id, day=found, doses=0, booked=0)
        db.session.add(stock)
    if doses < stock.booked:
        raise ValidationError(
            ngettext(
                "%(num)d dose is booked that day: keep at least as many.",
                "%(num)d doses are booked that day: keep at least as many.",
                stock.booked,
            ),
            "doses",
        )
    stock.doses = doses
    db.session.flush()
    offered.forget(centre.id)
    return stock


def find(model, object_id: uuid.UUID):
    """The clinic's vaccine, campaign or centre of this id. :raises NotFound: otherwise."""
    found = db.session.scalar(sa.select(model).where(model.id == object_id))
    if found is None:
        raise NotFound(_("Not found."))
    return found
