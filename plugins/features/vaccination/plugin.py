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
from plugins.features.vaccination import api, fhir, importer, views

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
