"""The clinic's audit log page, for its admins: who read or changed what, and when.

Routes only; the reading is :mod:`core.audit_log`.
"""

from flask import Blueprint, g, render_template, request
from flask_babel import format_date

from core import audit_log
from core.db import db
from core.errors import ValidationError
from core.web import admin_only, require_staff

bp = Blueprint("audit", __name__)
bp.before_request(require_staff)


@bp.route("/audit")
@admin_only
def events():
    try:
        filters = audit_log.parse_filters(request.args)
        cursor = audit_log.parse_cursor(request.args)
        log = audit_log.read_log(filters, g.tenant.timezone, cursor)
    except ValidationError as exc:
        db.session.rollback()  # a refused filter reads nothing, so records nothing
        return _page(audit_log.Filters(), None, exc), exc.status
    page = _page(filters, log)
    db.session.commit()  # the audit of the read
    return page


def _page(filters, log, error: ValidationError | None = None):
    present = log.actions if log else audit_log.present_actions()
    busiest = max((n for _day, n in log.per_day), default=0) if log else 0
    return render_template(
        "clinic/audit.html",
        filters=filters,
        submitted=request.args,
        log=log,
        error=error,
        action_choices=audit_log.action_choices(present, filters.action),
        actors=audit_log.actor_labels(),
        actions=audit_log.action_labels(),
        concerns_patient=audit_log.concerns_patient,
        per_day=[(day, format_date(day, "EEE d MMM"), n) for day, n in log.per_day] if log else [],
        busiest=busiest,
    )
