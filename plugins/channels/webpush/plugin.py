"""Web Push: notifications on patients' phones and computers, acknowledged on display.

The patient turns notifications on from their page (``/me/notifications``); messages whose
plan has ``push`` go to each of their devices (see :mod:`.provider`), and count as delivered
when a device acknowledges showing them, else go on by the next channel of the plan.
"""

import click
from flask import url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from core.plugin_api import (
    DashboardItem,
    DashboardLine,
    Setting,
    db,
    deployment_settings,
    fail,
    hookimpl,
    save_deployment_settings,
    system_scope,
)
from plugins.channels.webpush import pages, subscriptions
from plugins.channels.webpush.provider import WebPush, generate_keys

kind = "channel"
name = _l("Web Push notifications")
description = _l("Web Push: notifications on patients' devices, acknowledged when shown.")

PLUGIN = "webpush"
# The push services of the browsers patients use (Chrome and Android, Firefox, Safari on
# macOS and iOS, Edge): the only addresses the worker will post to.
PUSH_SERVICES = (
    "https://fcm.googleapis.com, https://updates.push.services.mozilla.com, "
    "https://web.push.apple.com, https://*.notify.windows.com"
)


@hookimpl
def relais_register_channels():
    return [WebPush]


@hookimpl
def relais_channel_address(patient, channel):
    """The patient's subscriptions, for a message's ``push`` step; None without any."""
    if channel != "push":
        return None
    return subscriptions.address(patient)


@hookimpl
def relais_channel_address_sql(channel):
    """Patients with at least one subscription, for counts in the database."""
    if channel != "push":
        return None
    return subscriptions.subscribed_sql()


@hookimpl
def relais_register_blueprints():
    return [pages.bp]


@hookimpl
def relais_patient_home_cards(patient):
    """Notifications on this device: on for how many of the patient's devices, and the page
    that turns them on or off (the browser's permission is asked there)."""
    devices = len(subscriptions.of_patient(patient))
    state = (
        ngettext("On for %(num)d device", "On for %(num)d devices", devices)
        if devices
        else _("Off")
    )
    line = DashboardLine(
        text=_("Turn notifications on or off"),
        state=state,
        url=url_for("webpush.notifications"),
        tone="ok" if devices else "",
    )
    return [
        DashboardItem(
            title=_("Notifications on this device"),
            count=0,
            url="",
            lines=(line,),
            order=40,
            note=_("Your clinic can tell you of a reminder or a new message on this device."),
        )
    ]


# --- settings --------------------------------------------------------------------------------


def _contact(text: str) -> str:
    if not (text.startswith("mailto:") and "@" in text) and not text.startswith("https://"):
        raise ValueError(_("A mailto: address or an https:// page where push services reach you."))
    return text


def _whole(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ValueError(_("A whole number from %(low)d to %(high)d.", low=low, high=high))
        return value

    return parse


def _services(text: str) -> str:
    origins = [o.strip() for o in text.split(",") if o.strip()]
    if not origins or any("://" not in o or o.count("/") > 2 for o in origins):
        raise ValueError(_("Origins separated by commas, e.g. https://fcm.googleapis.com."))
    return ", ".join(origins)


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "contact",
            _l("Contact"),
            help=_l(
                "A mailto: address or https:// page of yours, sent to push services with "
                "every message so that they can reach you."
            ),
            parse=_contact,
        ),
        Setting(
            "ttl",
            _l("Time to live (seconds)"),
            default=300,
            help=_l(
                "How long a push service keeps a message for a device that is offline. "
                "Keep it near the acknowledgement timeout: the next channel takes over then."
            ),
            parse=_whole(0, 2419200),
        ),
        Setting(
            "ack_timeout",
            _l("Acknowledgement timeout (minutes)"),
            default=5,
            help=_l(
                "A notification no device has shown within this time is sent by the next "
                "channel of the message's plan."
            ),
            parse=_whole(1, 1440),
        ),
        Setting(
            "push_services",
            _l("Push services"),
            default=PUSH_SERVICES,
            help=_l("Origins of the push services devices may subscribe with."),
            parse=_services,
        ),
    ]


# --- command line ----------------------------------------------------------------------------


@hookimpl
def relais_register_commands(cli):

    @cli.group("webpush")
    def webpush():
        """Web Push: the deployment_settings's VAPID keys."""

    @webpush.command("keys")
    @click.option("--force", is_flag=True, help="Replace existing keys (devices subscribe again).")
    def keys(force: bool):
        """Generate the deployment_settings's VAPID key pair; print the public key."""
        with system_scope():
            if deployment_settings(PLUGIN).get("vapid_private_key") and not force:
                fail(
                    "VAPID keys exist already. --force replaces them: every device then has "
                    "to turn notifications on again."
                )
            private, public = generate_keys()
            save_deployment_settings(
                PLUGIN, {"vapid_private_key": private, "vapid_public_key": public}
            )
            # Subscriptions are bound to the old public key: push services would refuse them.
            dropped = subscriptions.forget_all() if force else 0
            db.session.commit()
        click.echo(public)
        if dropped:
            click.echo(
                f"{dropped} device subscriptions removed: patients turn them on again.", err=True
            )
