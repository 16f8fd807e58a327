"""The clinic's home page for its staff: today's work.

Cards of what waits: the core's own (messages that failed or were refused, online sign-ups to
check) and those features add through ``relais_dashboard_items`` (today's appointments...).
Routes only; the queries are :mod:`core.clinic.patients` and :mod:`core.delivery.log`.
"""

from datetime import datetime, time
from zoneinfo import ZoneInfo

from flask import Blueprint, g, render_template, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user

from core.clinic import patients
from core.delivery import log as message_log
from core.plugins import DashboardItem, DashboardLine, hooks_for
from core.web.staff_access import require_staff

bp = Blueprint("home", __name__)
bp.before_request(require_staff)

SHOWN = 5  # lines per card; the card's link leads to the rest


@bp.route("/")
def index():
    tenant = g.tenant
    zone = ZoneInfo(tenant.timezone)
    today = datetime.now(zone).date()
    items = [*_core_items(datetime.combine(today, time(0), zone))]
    for found in hooks_for(tenant).relais_dashboard_items(
        tenant=tenant, user=current_user._get_current_object(), day=today
    ):
        items += found or []
    items.sort(key=lambda item: item.order)
    return render_template(
        "clinic/index.html",
        items=items,
        patient_count=patients.count_patients(),
        today_label=format_date(today, "full"),
    )


def _core_items(since: datetime) -> list[DashboardItem]:
    """What the core knows waits: messages gone wrong since ``since``, sign-ups to check."""
    gone_wrong, count = message_log.troubles(since, limit=SHOWN)
    lines = [
        DashboardLine(
            text=message_log.purpose_labels().get(message.purpose, message.purpose),
            state=reason,
            url=url_for("messages.view", message_id=message.id),
            tone="attention",
        )
        for message, reason in gone_wrong
    ]
    to_check, waiting = patients.first_to_check(SHOWN), patients.count_to_check()
    return [
        DashboardItem(
            title=_("Messages that failed or were refused today"),
            count=count,
            url=url_for("messages.index"),
            lines=tuple(lines),
            empty=_("Every message of today went out."),
            order=20,
        ),
        DashboardItem(
            title=_("Online sign-ups to check"),
            count=waiting,
            url=url_for("patients.index", to_check=1),
            lines=tuple(
                DashboardLine(
                    text=patient.full_name,
                    url=url_for("patients.view", patient_id=patient.id),
                )
                for patient in to_check
            ),
            empty=_("No sign-up to check."),
            order=30,
        ),
    ]
