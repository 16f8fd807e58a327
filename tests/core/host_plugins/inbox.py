"""A feature that leaves work to the staff, as patient messaging will: its unread replies."""

from flask import url_for

from core.plugin_api import DashboardItem, DashboardLine, hookimpl

kind = "feature"
asked: list[tuple[str, object]] = []  # (staff member's e-mail, the day the page asked for)


@hookimpl
def relais_dashboard_items(user, day):
    asked.append((user.email, day))
    return [
        DashboardItem(
            title="Replies to read",
            count=2,
            url=url_for("messages.index"),
            lines=(DashboardLine(text="Jeanne Durand", state="Unread", tone="attention"),),
            order=15,
        )
    ]
