"""Status callbacks: every status change of a clinic's messages and every patient reply,
POSTed signed to the clinic's own software, retried for 24 hours, in order per message."""

from flask_babel import lazy_gettext as _l

from core.plugin_api import MenuItem, Setting, ValidationError, check, hookimpl, yes_no
from plugins.features.callbacks import delivery, retention
from plugins.features.callbacks.api import bp as api_bp
from plugins.features.callbacks.views import bp

kind = "feature"
name = _l("Status callbacks")
description = _l(
    "Status callbacks: every status change and patient reply, posted signed to the clinic's "
    "software."
)


def _seconds(text) -> int:
    try:
        return check.whole_number(text, "retry_seconds", 0, 3600)
    except ValidationError as exc:
        raise ValueError(exc.message) from None


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "allow_private",
            _l("Allow http and private addresses"),
            default=False,
            parse=yes_no,
            help=_l("Only for software on the clinic's own network, and for tests"),
        ),
        Setting(
            "retry_seconds",
            _l("First retry after (seconds)"),
            default=30,
            parse=_seconds,
            help=_l("Each retry waits twice as long, at most an hour, for 24 hours"),
        ),
    ]


@hookimpl
def relais_register_blueprints():
    return [bp, api_bp]


@hookimpl
def relais_menu_items():
    return [
        MenuItem(
            label=_l("Status callbacks"),
            endpoint="callbacks.index",
            roles=("admin",),
            section="settings",
        )
    ]


@hookimpl
def relais_message_statuses_changed(tenant, changes):
    delivery.record_status_changes(tenant, changes)


@hookimpl
def relais_inbound_received(tenant, reply_id, patient_id, channel, at):
    delivery.record_reply(tenant, reply_id, patient_id, channel, at)


@hookimpl
def relais_sweep(now):
    delivery.claim_due(now)
    retention.purge(now)
