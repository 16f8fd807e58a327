"""Vaccination: centres with opening hours, lines and stock; vaccines with their dose
schedule; patients booking dose 1 and dose 2 at once in a rush without overbooking.

Patients book on their clinic's subdomain (:mod:`.views`), once logged in (by a code with
the otp feature, or a link from the clinic); a call centre or software books through the
JSON API (:mod:`.api`); integrators read doses and slots as FHIR R4 (:mod:`.fhir`).
Operators import centres from CSV (``relais vaccination import-centres``).
"""

import sys

import click
from flask_babel import lazy_gettext as _l

from core.plugin_api import MenuItem, db, fail, hookimpl, tenant_option
from plugins.features.vaccination import (
    api,
    fhir,
    importer,
    setup,
    setup_pages,  # noqa: F401  (its routes are on views.bp)
    views,
    waitlist,
)

kind = "feature"
name = _l("Vaccination")
description = _l(
    "Vaccination: centres, vaccines with their dose schedule, stock, and patients booking "
    "both doses at once."
)
PLUGIN = "vaccination"


@hookimpl
def relais_register_blueprints():
    return [views.bp, views.patient_bp, api.bp, fhir.bp]


@hookimpl
def relais_menu_items():
    return [MenuItem(label=_l("Vaccination"), endpoint="vaccination.staff_day", order=20)]


@hookimpl
def relais_patient_links(tenant, patient):
    return [MenuItem(label=_l("Book a vaccination"), endpoint="vaccination_patient.patient_home")]


@hookimpl
def relais_register_commands(cli):
    @cli.group("vaccination")
    def vaccination():
        """Vaccination centres, vaccines and bookings."""

    @vaccination.command("import-centres")
    @click.argument("file", type=click.File("r", encoding="utf-8-sig"))
    @tenant_option(PLUGIN)
    def import_centres(tenant, file):
        """Import centres, their opening hours and stock from a CSV FILE: every row, or
        nothing when a row is wrong (each wrong row is listed)."""
        rows = list(importer.read(file))
        with click.progressbar(length=len(rows), label="Importing", file=sys.stderr) as bar:
            report = importer.run(tenant, rows, progress=bar.update)
        if report.errors:
            for error in report.errors[: importer.MAX_SHOWN]:
                click.echo(f"line {error.line}: {error.field}: {error.message}", err=True)
            fail(f"{len(report.errors)} wrong rows: nothing was imported.")
        db.session.commit()
        click.echo(
            f"{report.centres} centres, {report.openings} opening days, "
            f"{report.stock} stock days imported."
        )

    @vaccination.command("add-vaccine")
    @click.option("--code", required=True, help="A short code, e.g. comirnaty (CSV files use it).")
    @click.option("--name", required=True, help="The name patients read.")
    @click.option("--doses", type=int, default=2, show_default=True)
    @click.option("--min-days", type=int, default=0, help="Days between doses, at least.")
    @click.option("--ideal-days", type=int, help="Days between doses, ideally.")
    @click.option("--max-days", type=int, help="Days between doses, at most.")
    @click.option("--min-age", type=int, help="Given from this age.")
    @click.option("--max-age", type=int, help="Given up to this age.")
    @tenant_option(PLUGIN)
    def add_vaccine(tenant, code, name, doses, min_days, ideal_days, max_days, min_age, max_age):
        """Add a vaccine with its dose schedule."""
        vaccine = setup.add_vaccine(
            code, name, doses, min_days, ideal_days, max_days, min_age, max_age
        )
        db.session.commit()
        click.echo(
            f"{vaccine.code}: {vaccine.doses} doses, {vaccine.min_interval_days} to "
            f"{vaccine.max_interval_days} days apart (ideally {vaccine.ideal_interval_days})."
        )

    @vaccination.command("add-campaign")
    @click.option("--name", required=True, help="The group, as patients read it.")
    @click.option("--vaccine", "vaccine_code", help="Only for this vaccine (its code).")
    @click.option("--min-age", type=int, help="From this age.")
    @click.option("--max-age", type=int, help="Up to this age.")
    @click.option(
        "--attribute", "attributes", multiple=True, help="Patients with this attribute (repeat)."
    )
    @tenant_option(PLUGIN)
    def add_campaign(tenant, name, vaccine_code, min_age, max_age, attributes):
        """Open a campaign: restricted centres take its patients."""
        campaign = setup.add_campaign(name, vaccine_code, min_age, max_age, attributes)
        db.session.commit()
        click.echo(f"Campaign open: {campaign.name}.")

    @vaccination.command("release-holds")
    @tenant_option(PLUGIN)
    def release_holds(tenant):
        """Release the waitlist's offers that ran out (run it every minute from a timer):
        each place goes to the next patient waiting, or back to everyone."""
        count = waitlist.release_expired(tenant)
        db.session.commit()
        click.echo(f"{count} offers ran out.")
