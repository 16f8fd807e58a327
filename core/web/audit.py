"""The clinic's audit log page, for its admins: who read or changed what, and when.

Routes only; the reading is :mod:`core.clinic.audit`.
"""

from flask import Blueprint, g, render_template, request
from flask_babel import format_date

from core.clinic import audit
from core.db import db
from core.errors import ValidationError
from core.web.staff_access import admin_only, require_staff

bp = Blueprint("audit", __name__)
bp.before_request(require_staff)


@bp.route("/audit")
@admin_only
def events():
    try:
        filters = audit.parse_filters(request.args)
        cursor = audit.parse_cursor(request.args)
        log = audit.read_log(filters, g.tenant.timezone, cursor)
    except ValidationError as exc:
        db.session.rollback()  # a refused filter reads nothing, so records nothing
        return _page(audit.Filters(), None, exc), exc.status
    page = _page(filters, log)
    db.session.commit()  # the audit of the read
    return page


def _page(filters, log, error: ValidationError | None = None):
    present = log.actions if log else audit.present_actions()
    busiest = max((n for _day, n in log.per_day), default=0) if log else 0
    return render_template(
        "clinic/audit.html",
        filters=filters,
        submitted=request.args,
        log=log,
        error=error,
        action_choices=audit.action_choices(present, filters.action),
        actors=audit.actor_labels(),
        actions=audit.action_labels(),
        concerns_patient=audit.concerns_patient,
        per_day=[(day, format_date(day, "EEE d MMM"), n) for day, n in log.per_day] if log else [],
        busiest=busiest,
    )
