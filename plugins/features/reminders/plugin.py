"""Reminders: up to four reminders before each appointment, by the patient's best channel.

Scheduled from the appointments feature's hook (``relais_appointment_changed``) as outbox
messages waiting for their time; answered by a reply (OUI/NON, YES/NO, JA/NEIN, SI/NO,
JA/NEE) or through the signed link each reminder carries. See docs/appointments.md.
"""

import unicodedata
from datetime import timedelta

import click
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    MenuItem,
    Setting,
    Tenant,
    db,
    enabled_plugins,
    hookimpl,
    system_scope,
    tenant_scope,
    utcnow,
    yes_no,
)
from plugins.features.reminders import service, stats, texts, views
from plugins.features.reminders.schedule import parse_schedule, parse_schedule_by_type

kind = "feature"
name = _l("Appointment reminders")
description = _l(
    "Reminders: up to four before each appointment, by the patient's best channel; "
    "patients confirm or cancel by reply or link."
)
LANGUAGE_NAMES = {
    "fr": _l("Reminder template (French)"),
    "en": _l("Reminder template (English)"),
    "de": _l("Reminder template (German)"),
    "it": _l("Reminder template (Italian)"),
    "nl": _l("Reminder template (Dutch)"),
}


def normalized(text: str) -> str:
    """A reply as one upper-case word without accents: " Sì. " -> "SI"."""
    word = unicodedata.normalize("NFKD", (text or "").strip().strip(".!").upper())
    return "".join(c for c in word if not unicodedata.combining(c))


@hookimpl
def relais_register_blueprints():
    return [views.bp, views.api_bp, views.link_bp]


@hookimpl
def relais_menu_items(tenant, user):
    return [
        MenuItem(
            label=_l("Reminders"),
            endpoint="reminders.settings_page",
            roles=("admin",),
            section="settings",
        ),
        MenuItem(label=_l("Reminder figures"), endpoint="reminders.stats_page", section="settings"),
    ]


@hookimpl
def relais_plugin_settings():
    found = [
        Setting(
            "schedule",
            _l("When reminders go"),
            default="72h, 24h, 2h",
            parse=parse_schedule,
            clinic=True,
            help=_l("Up to four times before the appointment, e.g. 72h, 24h, 2h or 30m."),
        ),
        Setting(
            "schedule_by_type",
            _l("Reminders by appointment type"),
            default="",
            parse=parse_schedule_by_type,
            clinic=True,
            help=_l("Optional, e.g. vaccination: 48h, 2h; consultation: 24h"),
        ),
        Setting(
            "notify_cancellation",
            _l("Tell the patient when an appointment is cancelled"),
            default=True,
            parse=yes_no,
            clinic=True,
        ),
    ]
    for language in texts.LANGUAGES:
        found.append(
            Setting(
                f"template_{language}",
                LANGUAGE_NAMES[language],
                default=texts.DEFAULT_TEMPLATES[language],
                parse=texts.check_template,
                clinic=True,
                help=_l(
                    "Variables: patient, date, time, practitioner, place, clinic, address, link."
                ),
            )
        )
    return found


@hookimpl
def relais_appointment_changed(tenant, appointment, change):
    service.on_change(tenant, appointment, change)


@hookimpl(trylast=True)
def relais_handle_inbound(tenant, patient, channel, text):
    """OUI/NON and their like answer the patient's next reminded appointment. Last, so that
    the country's rules (STOP; JA confirming a consent in Germany) come first."""
    return service.handle_reply(tenant, patient, normalized(text))


@hookimpl
def relais_register_commands(cli):
    @cli.group("reminders")
    def reminders():
        """Appointment reminders."""

    @reminders.command("stats")
    @click.option("--country", help="Only the clinics of this country (e.g. FR).")
    @click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True)
    def reminder_stats(country, days):
        """Per clinic, over the last days: reminders sent by channel, confirmation rate and
        no-show rate with and without reminders (for operators)."""
        end = utcnow()
        start = end - timedelta(days=days)
        with system_scope():
            query = sa.select(Tenant).order_by(Tenant.slug)
            if country:
                query = query.where(Tenant.country_code == country.upper())
            clinics = [t for t in db.session.scalars(query) if service.PLUGIN in enabled_plugins(t)]
        if not clinics:
            raise click.UsageError("No clinic has the reminders feature enabled there.")
        click.echo(
            f"{'clinic':<24} {'sent':>7}  by channel{'':<22} confirmed  no-show with/without"
        )
        for tenant in clinics:
            with tenant_scope(tenant.id):
                figures = stats.compute(start, end)
            channels = ", ".join(f"{c} {n}" for c, n in sorted(figures.sent_by_channel.items()))
            click.echo(
                f"{tenant.slug:<24} {sum(figures.sent_by_channel.values()):>7}  {channels:<32}"
                f" {_percent(figures.confirmation_rate):>9}  {_percent(figures.no_show_rate(True))}"
                f" / {_percent(figures.no_show_rate(False))}"
            )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"
