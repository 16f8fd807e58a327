"""Campaigns: practice news and prevention campaigns to a segment of the clinic's patients.

Segments are counted in the database (attributes through the keyed index, consent and
opt-out per channel); messages are written chunk by chunk on the ``bulk`` queue with the
bulk send path, judged by the country's rules. See docs/campaigns.md.
"""

import time
import uuid

import click
from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    ConsolePage,
    MenuItem,
    Setting,
    ValidationError,
    db,
    fail,
    hookimpl,
    system_scope,
    tenant_option,
)
from plugins.features.campaigns import console, service, views

kind = "feature"
name = _l("Campaigns")
description = _l(
    "Campaigns: practice news and prevention campaigns to a segment of patients, by SMS or "
    "e-mail, under the country's rules, with live progress."
)


def _parse_chunk(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if not 1 <= value <= 5000:
        raise ValueError(_l("Give a whole number from 1 to 5000."))
    return value


@hookimpl
def relais_register_blueprints():
    return [views.bp]


@hookimpl
def relais_register_console_pages():
    return [ConsolePage(console.bp, _l("Campaigns"), "campaigns_console.country_page")]


@hookimpl
def relais_sweep(now):
    """Queue again the campaigns' jobs lost by Redis or a killed worker."""
    service.requeue_lost(now)


@hookimpl
def relais_menu_items(tenant, user):
    return [MenuItem(label=_l("Campaigns"), endpoint="campaigns.list_page", roles=("admin",))]


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "chunk",
            _l("Patients per chunk"),
            default=1000,
            parse=_parse_chunk,
            help=_l("How many recipients one job writes at once (1 to 5000)."),
        )
    ]


@hookimpl
def relais_register_commands(cli):
    @cli.group("campaigns")
    def campaigns():
        """Campaigns of a clinic: list, start, pause, resume, cancel, status."""

    @campaigns.command("list")
    @tenant_option(service.PLUGIN)
    def list_(tenant):
        """The clinic's campaigns, newest first."""
        for campaign in service.listing():
            figures = service.progress(campaign)
            click.echo(
                f"{campaign.id}  {campaign.state:<10} {figures['written']:>7}/"
                f"{figures['total'] if figures['total'] is not None else '-':<7}  {campaign.name}"
            )

    def _act(action):
        @campaigns.command(action)
        @click.argument("campaign_id")
        @tenant_option(service.PLUGIN)
        def command(tenant, campaign_id):
            campaign = service.find(campaign_id)
            if action == "start":
                service.start(tenant, campaign)
            elif action == "resume":
                service.resume(tenant, campaign)
            else:
                getattr(service, action)(campaign)
                db.session.commit()
            click.echo(f"{campaign.name}: {campaign.state}")

        command.__doc__ = {
            "start": "Check a draft campaign and start it (now or at its start time).",
            "pause": "Stop writing the campaign's chunks; resume goes on where it stopped.",
            "resume": "Queue again the chunks of a paused campaign not written yet.",
            "cancel": "Stop the campaign for good; its messages still waiting are cancelled.",
        }[action]

    for action in ("start", "pause", "resume", "cancel"):
        _act(action)

    @campaigns.command("country-start")
    @click.option("--country", required=True, help="Every clinic of this country (e.g. FR).")
    @click.option("--name", required=True)
    @click.option("--text", "texts", multiple=True, required=True, help="LANG=TEXT, e.g. fr=...")
    @click.option("--default-language", required=True)
    @click.option(
        "--channel",
        "channels",
        multiple=True,
        default=("sms",),
        show_default=True,
        help="sms, email, push or voice (push and voice where a clinic has their provider).",
    )
    @click.option("--attribute", "attributes", multiple=True)
    @click.option("--sex", "sexes", multiple=True, help="female, male, other or unknown.")
    @click.option("--age-min", default="")
    @click.option("--age-max", default="")
    @click.option("--start-at", default="", help="ISO 8601 with its offset; empty: now.")
    @click.option("--rate", default="", help="Messages a minute, per clinic.")
    def country_start(country, name, texts, default_language, channels, attributes, sexes, **rest):
        """For operators: one campaign in every clinic of a country that has the feature,
        each on its own patients, sender and rules; prints the run id and each clinic's
        outcome."""
        data = {
            "name": name,
            "default_language": default_language,
            "channels": list(channels),
            "attributes": list(attributes),
            "sexes": list(sexes),
            **rest,
        }
        for text in texts:
            language, _, body = text.partition("=")
            data[f"template_{language.strip()}"] = body
        with system_scope():
            try:
                run, outcome = service.start_in_country(country, data, by="operator")
            except ValidationError as exc:
                fail(exc.message)
        click.echo(f"run {run}")
        for slug, result in outcome.items():
            click.echo(f"{slug:<24} {result}")

    @campaigns.command("country-status")
    @click.argument("run")
    def country_status(run):
        """For operators: per clinic, the figures of a country-wide campaign."""
        try:
            wanted = uuid.UUID(run)
        except ValueError:
            fail("Give the run id country-start printed.")
        with system_scope():
            figures = service.country_figures(wanted)
        if not figures:
            fail("No campaign has this run id.")
        click.echo(
            f"{'clinic':<24} {'state':<10} {'written':>8} "
            + " ".join(f"{b:>9}" for b in service.BUCKETS)
        )
        for slug, shown in figures.items():
            click.echo(
                f"{slug:<24} {shown['state']:<10} {shown['written']:>8} "
                + " ".join(f"{shown['figures'][b]:>9}" for b in service.BUCKETS)
            )

    @campaigns.command("status")
    @click.argument("campaign_id")
    @click.option("--watch", is_flag=True, help="Follow it with a progress bar until done.")
    @click.option("--every", type=float, default=1.0, show_default=True, help="Seconds.")
    @tenant_option(service.PLUGIN)
    def status(tenant, campaign_id, watch, every):
        """A campaign's figures; with --watch, a progress bar until it is done."""
        figures = service.progress(service.find(campaign_id))
        if watch and figures["total"]:
            with click.progressbar(length=figures["total"], label="written") as bar:
                shown = 0
                while True:
                    bar.update(figures["written"] - shown)
                    shown = figures["written"]
                    if figures["state"] in ("done", "cancelled", "paused"):
                        break
                    time.sleep(every)
                    db.session.rollback()  # a fresh snapshot
                    figures = service.progress(service.find(campaign_id))
        click.echo(f"state: {figures['state']}")
        click.echo(f"recipients: {figures['total']}  written: {figures['written']}")
        for bucket, number in figures["figures"].items():
            click.echo(f"{bucket}: {number}")
