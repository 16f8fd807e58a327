"""Set-up pages for a clinic's admins: vaccines, campaigns (who may book) and centres,
listed, added, changed and deleted (``/vaccination/setup``), and each centre's opening days
and stock (``/vaccination/centres/<id>/days``).

Routes only: parse the form, call :mod:`.setup`, render. A wrong field answers 422 with
the form and the field's message, and nothing is changed; a deletion others depend on
answers 409 and says why. Each change is audited. One template serves a new object and a
change of one (``vaccine``, ``campaign`` or ``centre`` None on the new one's page).
"""

import uuid

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from core.plugin_api import (
    DomainError,
    admin_only,
    attribute_labels,
    check,
    db,
    record_audit,
    utcnow,
)
from plugins.features.vaccination import setup, slots
from plugins.features.vaccination.models import Campaign, Centre, CentreKind, Vaccine
from plugins.features.vaccination.views import bp

PER_PAGE = 100  # centres on one page of the list: a country has thousands


def kind_names() -> dict[str, str]:
    """The kinds of centre, as staff read them."""
    return {
        CentreKind.CENTRE.value: _("Vaccination centre"),
        CentreKind.MEGA.value: _("Mega-centre"),
        CentreKind.PRACTICE.value: _("GP practice"),
        CentreKind.PHARMACY.value: _("Pharmacy"),
        CentreKind.MOBILE.value: _("Mobile unit"),
    }


@bp.get("/vaccination/setup")
@admin_only
def setup_list():
    """Vaccines, campaigns and a page of centres, each with a link to change it."""
    try:
        page = check.page(request.args.get("page"))
    except DomainError:
        page = 1
    vaccines = list(db.session.scalars(sa.select(Vaccine).order_by(Vaccine.name)))
    campaigns = list(db.session.scalars(sa.select(Campaign).order_by(Campaign.name)))
    total = db.session.scalar(sa.select(sa.func.count(Centre.id)))
    centres = list(
        db.session.scalars(
            sa.select(Centre).order_by(Centre.code).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
        )
    )
    return render_template(
        "vaccination/setup_list.html",
        vaccines=vaccines,
        campaigns=campaigns,
        centres=centres,
        vaccine_of={v.id: v for v in vaccines},
        kinds=kind_names(),
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
    )


def _saved(action: str, object_id: uuid.UUID, message: str):
    record_audit(action, object_id)
    db.session.commit()
    flash(message)
    return redirect(url_for(".setup_list"), 303)


def _refused(template: str, exc: DomainError, **context):
    """The form again with the field's message; nothing it sent was kept."""
    db.session.rollback()
    return render_template(template, error=exc, **context), exc.status


# --- vaccines ----------------------------------------------------------------------------------


def _vaccine_form(vaccine: Vaccine) -> dict:
    return {
        "code": vaccine.code,
        "name": vaccine.name,
        "doses": vaccine.doses,
        "min_days": vaccine.min_interval_days,
        "ideal_days": vaccine.ideal_interval_days,
        "max_days": vaccine.max_interval_days,
        "min_age": vaccine.min_age,
        "max_age": vaccine.max_age,
    }


def _vaccine_page(vaccine: Vaccine | None, save, action: str, done: str):
    """The vaccine form, and on POST ``save(**fields)`` (a new vaccine or a change)."""
    booked = setup.bookings_ahead(vaccine_id=vaccine.id) if vaccine else 0
    context = {"vaccine": vaccine, "booked": booked}
    if request.method == "POST":
        values = {k: request.form.get(k) for k in setup.VACCINE_FIELDS}
        try:
            saved = save(**values)
        except DomainError as exc:
            return _refused("vaccination/vaccine_edit.html", exc, values=values, **context)
        return _saved(action, saved.id, done)
    values = _vaccine_form(vaccine) if vaccine else {"doses": 2, "min_days": 0}
    return render_template("vaccination/vaccine_edit.html", values=values, error=None, **context)


@bp.route("/vaccination/vaccines/new", methods=["GET", "POST"])
@admin_only
def vaccine_new():
    """Add a vaccine and its dose schedule, as ``relais vaccination add-vaccine`` does."""
    return _vaccine_page(None, setup.add_vaccine, "vaccination.vaccine.added", _("Vaccine added."))


@bp.route("/vaccination/vaccines/<uuid:vaccine_id>/edit", methods=["GET", "POST"])
@admin_only
def vaccine_edit(vaccine_id: uuid.UUID):
    """Change a vaccine and its dose schedule; bookings made keep their dates."""
    vaccine = setup.find(Vaccine, vaccine_id)
    return _vaccine_page(
        vaccine,
        lambda **values: setup.change_vaccine(vaccine, **values),
        "vaccination.vaccine.changed",
        _("Vaccine saved."),
    )


@bp.post("/vaccination/vaccines/<uuid:vaccine_id>/delete")
@admin_only
def vaccine_delete(vaccine_id: uuid.UUID):
    """Delete a vaccine nobody was booked for (409 saying why otherwise)."""
    vaccine = setup.find(Vaccine, vaccine_id)
    context = {"vaccine": vaccine, "booked": setup.bookings_ahead(vaccine_id=vaccine.id)}
    form = _vaccine_form(vaccine)
    try:
        setup.delete_vaccine(vaccine)
    except DomainError as exc:
        return _refused("vaccination/vaccine_edit.html", exc, values=form, **context)
    return _saved("vaccination.vaccine.deleted", vaccine_id, _("Vaccine deleted."))


# --- campaigns ---------------------------------------------------------------------------------


def _campaign_form(campaign: Campaign, vaccines: dict) -> dict:
    shot = vaccines.get(campaign.vaccine_id)
    return {
        "name": campaign.name,
        "vaccine": shot.code if shot else "",
        "min_age": campaign.min_age,
        "max_age": campaign.max_age,
        "attributes": list(campaign.attributes or ()),
        "active": campaign.active,
    }


def _campaign_page(campaign: Campaign | None, save, action: str, done: str):
    """The campaign form, and on POST ``save(name, vaccine_code, min_age, max_age,
    attributes, active)`` (a new campaign or a change)."""
    vaccines = {v.id: v for v in db.session.scalars(sa.select(Vaccine).order_by(Vaccine.name))}
    context = {
        "campaign": campaign,
        "vaccines": {v.code: v.name for v in vaccines.values()},
        "attributes": attribute_labels(),
    }
    if request.method == "POST":
        form = request.form
        values = {
            "name": form.get("name"),
            "vaccine": form.get("vaccine") or "",
            "min_age": form.get("min_age"),
            "max_age": form.get("max_age"),
            "attributes": form.getlist("attributes"),
            "active": form.get("active") == "1",
        }
        try:
            saved = save(
                values["name"],
                values["vaccine"],
                values["min_age"],
                values["max_age"],
                values["attributes"],
                values["active"],
            )
        except DomainError as exc:
            return _refused("vaccination/campaign_edit.html", exc, values=values, **context)
        return _saved(action, saved.id, done)
    values = _campaign_form(campaign, vaccines) if campaign else {"active": True}
    return render_template("vaccination/campaign_edit.html", values=values, error=None, **context)


@bp.route("/vaccination/campaigns/new", methods=["GET", "POST"])
@admin_only
def campaign_new():
    """Open a campaign (or prepare a closed one), as ``relais vaccination add-campaign`` does."""
    return _campaign_page(
        None, setup.add_campaign, "vaccination.campaign.added", _("Campaign added.")
    )


@bp.route("/vaccination/campaigns/<uuid:vaccination_campaign_id>/edit", methods=["GET", "POST"])
@admin_only
def campaign_edit(vaccination_campaign_id: uuid.UUID):
    """Change who a campaign takes, or close it; bookings made stay."""
    campaign = setup.find(Campaign, vaccination_campaign_id)
    return _campaign_page(
        campaign,
        lambda *values: setup.change_campaign(campaign, *values),
        "vaccination.campaign.changed",
        _("Campaign saved."),
    )


# --- centres -----------------------------------------------------------------------------------

CENTRE_FIELDS = ("code", "name", "kind", "address", "lines", "capacity", "slot_minutes")


def _centre_form(centre: Centre) -> dict:
    return {
        **{k: getattr(centre, k) for k in CENTRE_FIELDS if k != "lines"},
        "kind": centre.kind.value,
        "lines": setup.line_count(centre),
        "restricted": centre.restricted,
    }


def _centre_context(centre: Centre | None) -> dict:
    return {
        "centre": centre,
        "kinds": kind_names(),
        "booked": setup.bookings_ahead(centre_id=centre.id) if centre else 0,
    }


def _centre_page(centre: Centre | None, save, action: str, done: str):
    """The centre form, and on POST ``save(tenant, **fields)`` (a new centre or a change)."""
    context = _centre_context(centre)
    if request.method == "POST":
        values = {k: request.form.get(k) for k in CENTRE_FIELDS}
        values["restricted"] = request.form.get("restricted") == "1"
        try:
            saved = save(g.tenant, **values)
        except DomainError as exc:
            return _refused("vaccination/centre_edit.html", exc, values=values, **context)
        return _saved(action, saved.id, done)
    values = (
        _centre_form(centre)
        if centre
        else {"kind": CentreKind.CENTRE.value, "lines": 1, "capacity": 1, "slot_minutes": 10}
    )
    return render_template("vaccination/centre_edit.html", values=values, error=None, **context)


@bp.route("/vaccination/centres/new", methods=["GET", "POST"])
@admin_only
def centre_new():
    """Add a centre and its lines; its opening days and stock come next, on its days page
    or from the CSV import."""
    return _centre_page(None, setup.add_centre, "vaccination.centre.added", _("Centre added."))


@bp.route("/vaccination/centres/<uuid:centre_id>/edit", methods=["GET", "POST"])
@admin_only
def centre_edit(centre_id: uuid.UUID):
    """Change a centre: name, kind, address, restricted agenda, lines, places, slot length."""
    centre = setup.find(Centre, centre_id)
    return _centre_page(
        centre,
        lambda tenant, **values: setup.change_centre(tenant, centre, **values),
        "vaccination.centre.changed",
        _("Centre saved."),
    )


@bp.post("/vaccination/centres/<uuid:centre_id>/delete")
@admin_only
def centre_delete(centre_id: uuid.UUID):
    """Delete a centre nobody was booked at (409 saying why otherwise)."""
    centre = setup.find(Centre, centre_id)
    context = _centre_context(centre)
    form = _centre_form(centre)
    try:
        setup.delete_centre(centre)
    except DomainError as exc:
        return _refused("vaccination/centre_edit.html", exc, values=form, **context)
    return _saved("vaccination.centre.deleted", centre_id, _("Centre deleted."))


# --- a centre's opening days and stock ---------------------------------------------------------

DAYS_LISTED = 100  # openings ahead on the centre's page: a mega-centre opens every day
OPENING_FIELDS = ("day", "opens", "closes")
NEW_OPENING = {"day": "", "opens": "09:00", "closes": "17:00"}


def _today():
    return slots.local_day(g.tenant, utcnow())


def _days_context(centre: Centre) -> dict:
    """The centre's next openings, with each day's doses left per vaccine."""
    openings = setup.openings_ahead(centre, _today(), DAYS_LISTED)
    vaccines = list(db.session.scalars(sa.select(Vaccine).order_by(Vaccine.name)))
    stock = setup.stock_of(centre, openings[0].day, openings[-1].day) if openings else {}
    return {"centre": centre, "openings": openings, "vaccines": vaccines, "stock": stock}


def _days_saved(action: str, centre: Centre, detail: str, message: str):
    record_audit(action, centre.id, detail=detail)
    db.session.commit()
    flash(message)
    return redirect(url_for(".centre_days", centre_id=centre.id), 303)


@bp.route("/vaccination/centres/<uuid:centre_id>/days", methods=["GET", "POST"])
@admin_only
def centre_days(centre_id: uuid.UUID):
    """The centre's opening days ahead with their stock; on POST, a new opening (day,
    opening and closing time), checked as the CSV import checks a row."""
    centre = setup.find(Centre, centre_id)
    values = {k: request.form.get(k) for k in OPENING_FIELDS}
    if request.method == "POST":
        try:
            added = setup.add_opening(g.tenant, centre, _today(), **values)
        except DomainError as exc:
            return _refused(
                "vaccination/centre_days.html", exc, values=values, **_days_context(centre)
            )
        return _days_saved(
            "vaccination.opening.added",
            centre,
            f"{added.day.isoformat()} {added.opens:%H:%M}",
            _("Opening day added."),
        )
    return render_template(
        "vaccination/centre_days.html",
        values=NEW_OPENING,
        error=None,
        **_days_context(centre),
    )


@bp.route("/vaccination/centres/<uuid:centre_id>/days/edit", methods=["GET", "POST"])
@admin_only
def opening_edit(centre_id: uuid.UUID):
    """Change the hours or the day of one opening (``?day=&opens=``) no booking depends on."""
    centre = setup.find(Centre, centre_id)
    day, opens = request.args.get("day"), request.args.get("opens")
    context = {"centre": centre, "day": day, "opens": opens}
    if request.method == "POST":
        values = {k: request.form.get(k) for k in OPENING_FIELDS}
        try:
            changed = setup.change_opening(g.tenant, centre, day, opens, _today(), **values)
        except DomainError as exc:
            return _refused("vaccination/opening_edit.html", exc, values=values, **context)
        return _days_saved(
            "vaccination.opening.changed",
            centre,
            f"{day} {opens} -> {changed.day.isoformat()} {changed.opens:%H:%M}",
            _("Opening day saved."),
        )
    opening = setup.opening(centre, day, opens)
    values = {
        "day": opening.day.isoformat(),
        "opens": f"{opening.opens:%H:%M}",
        "closes": f"{opening.closes:%H:%M}",
    }
    return render_template("vaccination/opening_edit.html", values=values, error=None, **context)


@bp.post("/vaccination/centres/<uuid:centre_id>/days/delete")
@admin_only
def opening_delete(centre_id: uuid.UUID):
    """Remove one opening no booking depends on (409 saying why otherwise)."""
    centre = setup.find(Centre, centre_id)
    day, opens = request.form.get("day"), request.form.get("opens")
    try:
        setup.delete_opening(g.tenant, centre, day, opens)
    except DomainError as exc:
        return _refused(
            "vaccination/centre_days.html", exc, values=NEW_OPENING, **_days_context(centre)
        )
    return _days_saved(
        "vaccination.opening.deleted", centre, f"{day} {opens}", _("Opening day removed.")
    )


@bp.route("/vaccination/centres/<uuid:centre_id>/stock", methods=["GET", "POST"])
@admin_only
def centre_stock(centre_id: uuid.UUID):
    """Set the doses of a vaccine the centre has on a day (never below those booked)."""
    centre = setup.find(Centre, centre_id)
    vaccines = {
        v.code: v.name for v in db.session.scalars(sa.select(Vaccine).order_by(Vaccine.name))
    }
    context = {"centre": centre, "vaccines": vaccines}
    if request.method == "POST":
        values = {k: request.form.get(k) for k in ("vaccine", "day", "doses")}
        try:
            setup.set_stock(g.tenant, centre, today=_today(), **values)
        except DomainError as exc:
            return _refused("vaccination/centre_stock.html", exc, values=values, **context)
        return _days_saved(
            "vaccination.stock.set",
            centre,
            f"{values['day']} {values['vaccine']} {values['doses']}",
            _("Stock saved."),
        )
    values = {"vaccine": next(iter(vaccines), ""), "day": request.args.get("day", "")}
    return render_template("vaccination/centre_stock.html", values=values, error=None, **context)
