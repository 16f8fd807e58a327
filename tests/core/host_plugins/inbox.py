"""A feature that leaves work to the staff, as patient messaging will: its unread replies."""

from flask import url_for

from core.plugin_api import DashboardAction, DashboardItem, DashboardLine, MenuItem, hookimpl

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
            lines=(
                DashboardLine(
                    text="Jeanne Durand",
                    state="Unread",
                    tone="attention",
                    actions=(DashboardAction("Mark read", url_for("messages.index")),),
                ),
            ),
            order=15,
        )
    ]


@hookimpl
def relais_patient_home_cards(patient):
    """The patient's side of it: a card with a button, on their home page."""
    asked.append((patient.first_name, None))
    button = DashboardAction(label="Mark all read", url=url_for("patient.home"))
    line = DashboardLine(text="A reply from the clinic", state="New", actions=(button,))
    return [DashboardItem(title="Your replies", count=1, url="", lines=(line,), order=5)]


@hookimpl
def relais_patient_links():
    """A plain link under the cards."""
    return [MenuItem(label="Older replies", endpoint="patient.home")]
