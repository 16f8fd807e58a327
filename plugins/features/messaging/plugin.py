"""Messaging: secure requests from patients to the practitioners they see, and replies.

Patients write from their page (``/me/messages``), with files (PDF, JPEG, PNG, encrypted at
rest); staff answer from the inbox (``/inbox``); the patient is told of an answer by their
best channel, never with its content. See docs/messaging.md.
"""

import click
import sqlalchemy as sa
from flask import url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    DashboardItem,
    DashboardLine,
    MenuItem,
    Setting,
    Tenant,
    attribute_labels,
    db,
    enabled_plugins,
    hookimpl,
    system_scope,
    tenant_scope,
    yes_no,
)
from plugins.features.messaging import digest, fhir, inbox, service, views
from plugins.features.messaging import hookspecs as messaging_hookspecs

kind = "feature"
hookspecs = messaging_hookspecs  # the hooks this feature calls; the host adds them
description = _l(
    "Messaging: patients write to the practitioners they see, staff answer from an inbox; "
    "bodies and files encrypted."
)
MAX_ATTACHMENT_MB = 20
ALLOWED_ONLY = "allowed"  # in first_writers: the patients a practitioner allowed, no others


def _megabytes(text: str) -> float:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise ValueError(_("a number of megabytes, e.g. 5")) from None
    if not 0 < value <= MAX_ATTACHMENT_MB:
        raise ValueError(_("between 0 and %(n)d megabytes", n=MAX_ATTACHMENT_MB))
    return value


def _attributes(text: str) -> str:
    """Follow-up attributes separated by commas (empty: every patient)."""
    chosen = [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]
    known = [*attribute_labels(), ALLOWED_ONLY]
    if any(a not in known for a in chosen):
        raise ValueError(_("some of: %(v)s", v=", ".join(known)))
    return ", ".join(dict.fromkeys(chosen))


@hookimpl
def relais_register_blueprints():
    return [views.bp, views.patient_bp, fhir.bp]


@hookimpl
def relais_menu_items(tenant, user):
    """The inbox, with its counters in the label (one small query per page)."""
    unread, unhandled = inbox.counters(user)
    label = _("Inbox")
    if unread or unhandled:
        label = _(
            "Inbox (%(unread)d unread, %(unhandled)d unhandled)",
            unread=unread,
            unhandled=unhandled,
        )
    return [MenuItem(label=label, endpoint="messaging.inbox_page", order=30)]


@hookimpl
def relais_dashboard_items(tenant, user):
    """The patients' requests nobody handled yet: how many (the user's own, for a
    practitioner), and the three newest."""
    _unread, unhandled = inbox.counters(user)
    show = "mine" if user.role == "practitioner" else "unhandled"
    newest = inbox.page(user, show, size=3, unhandled_only=True).rows if unhandled else []
    lines = tuple(
        DashboardLine(
            text=row.patient_name,
            state=_("Unread") if row.unread else _("Unhandled"),
            url=url_for("messaging.open_conversation", conversation_id=row.id),
            tone="attention",
        )
        for row in newest
    )
    return [
        DashboardItem(
            title=_("Patients' messages to handle"),
            count=unhandled,
            url=url_for("messaging.inbox_page", show="unhandled"),
            lines=lines,
            empty=_("No message waits for you."),
            order=20,
        )
    ]


@hookimpl(optionalhook=True)
def relais_appointment_changed(tenant, appointment, change):
    """An appointment marked done may call for the clinic's follow-up message (a bonus
    where the appointments feature is installed)."""
    if change == "status" and appointment.status == "done":
        service.after_appointment(tenant, appointment)


def _hours(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(_("a whole number of hours, e.g. 24")) from None
    if not 1 <= value <= 24 * 30:
        raise ValueError(_("between 1 and %(n)d hours", n=24 * 30))
    return value


def _threshold(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(_("a whole number of requests, e.g. 4")) from None
    if not 1 <= value <= 1000:
        raise ValueError(_("between 1 and %(n)d requests", n=1000))
    return value


def _types(text: str) -> str:
    return ", ".join(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))


@hookimpl(optionalhook=True)
def relais_appointment_actions(appointment):
    """ "Write to the patient" on each appointment of the agenda (a bonus where the
    appointments feature is installed): the conversation's templates fill in that
    appointment's date, time and reason."""
    return [MenuItem(label=_l("Write to the patient"), endpoint="messaging.new")]


@hookimpl
def relais_patient_actions(tenant, user, patient):
    return [MenuItem(label=_l("Write to this patient"), endpoint="messaging.new")]


@hookimpl
def relais_patient_home_cards(tenant, patient):
    """The patient's conversations, those with an answer they have not read first."""
    return [views.patient_card(patient)]


@hookimpl
def relais_register_commands(cli):
    @cli.group("messaging")
    def messaging():
        """Patient messaging."""

    @messaging.command("digest")
    def send_digest():
        """E-mail each practitioner whose unhandled requests reached the clinic's threshold,
        at most once a week each (run it daily from cron)."""
        sent = 0
        with system_scope():
            clinics = [
                t
                for t in db.session.scalars(sa.select(Tenant).order_by(Tenant.slug))
                if service.PLUGIN in enabled_plugins(t)
            ]
        for tenant in clinics:
            with tenant_scope(tenant.id):
                sent += digest.send_digests(tenant)
                db.session.commit()
        click.echo(f"{sent} e-mail(s) of waiting requests sent, {len(clinics)} clinic(s) seen.")


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "one_request_a_day",
            _l("One new request a day after an answer"),
            default=True,
            parse=yes_no,
            clinic=True,
            help=_l("A patient who got an answer today writes their next request tomorrow."),
        ),
        Setting(
            "first_writers",
            _l("Who may write a new request"),
            default="",
            parse=_attributes,
            clinic=True,
            help=_l(
                "Empty: every patient of the practitioner. Else only patients with one of these "
                "follow-ups, separated by commas: long_term_condition, chronic_disease, "
                "pregnancy_follow_up, needs_support; and, always, the patients a practitioner "
                "allowed on the page to write to them (allowed alone: only those). Replies are "
                "not concerned."
            ),
        ),
        Setting(
            "after_appointment_types",
            _l("Follow-up message after these appointment types"),
            default="",
            parse=_types,
            clinic=True,
            help=_l(
                "Appointment types separated by commas, e.g. vaccination: once one is marked "
                "done, its patient gets a message from the practitioner, and may answer once."
            ),
        ),
        Setting(
            "after_appointment_hours",
            _l("Hours after the appointment"),
            default=24,
            parse=_hours,
            clinic=True,
        ),
        Setting(
            "after_appointment_text",
            _l("Follow-up message"),
            default="",
            clinic=True,
            help=_l("Empty: How are you after your appointment? (in the patient's language)"),
        ),
        Setting(
            "digest",
            _l("Weekly e-mail of waiting requests"),
            default=True,
            parse=yes_no,
            clinic=True,
            help=_l(
                "A practitioner with this many unhandled requests or more gets an e-mail "
                "saying how many, with a link to the inbox (never a name nor the content), "
                "at most once a week."
            ),
        ),
        Setting(
            "digest_threshold",
            _l("Unhandled requests before that e-mail"),
            default=4,
            parse=_threshold,
            clinic=True,
        ),
        Setting(
            "max_attachment_mb",
            _l("Largest attachment (MB)"),
            default=5.0,
            parse=_megabytes,
            clinic=True,
            help=_l("Patients attach PDF, JPEG or PNG files, up to 3 per message."),
        ),
    ]
