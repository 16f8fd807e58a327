"""Patient list export: a CSV of the clinic's patients, for practice software and audits."""

import csv
import io
import sys

import click
import sqlalchemy as sa
from flask import Blueprint, Response, abort, g
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core.plugin_api import (
    MenuItem,
    Patient,
    Role,
    Setting,
    db,
    hookimpl,
    plugin_setting,
    record_audit,
    tenant_option,
)

kind = "feature"
name = _l("Exports")
description = _l(
    "Patient list export: a CSV of the clinic's patients, for practice software and audits."
)

bp = Blueprint("exports", __name__)
# Column names are identifiers, the same in every language: practice software maps them.
# ``sex`` holds FHIR's administrative gender codes (female, male, other, unknown) or nothing.
COLUMNS = (
    "id",
    "last_name",
    "first_name",
    "birth_date",
    "sex",
    "phone",
    "email",
    "language",
    "attributes",
)


def _delimiter(text: str) -> str:
    if text not in {",", ";", "tab"}:
        raise ValueError(_("choose ',' or ';' or 'tab'"))
    return text


def write_csv(out, tenant) -> int:
    """Write every patient of the current clinic as CSV; returns how many rows."""
    delimiter = plugin_setting(tenant, "exports", "delimiter")
    writer = csv.writer(out, delimiter="\t" if delimiter == "tab" else delimiter)
    writer.writerow(COLUMNS)
    count = 0
    rows = db.session.scalars(
        sa.select(Patient)
        .order_by(Patient.last_name, Patient.first_name)
        .execution_options(yield_per=1000)
    )
    for p in rows:
        writer.writerow(
            [
                p.id,
                p.last_name,
                p.first_name,
                p.birth_date or "",
                p.sex or "",
                p.phone or "",
                p.email or "",
                p.language,
                " ".join(p.attributes or []),
            ]
        )
        count += 1
    record_audit("patient.export")
    return count


@bp.get("/exports/patients.csv")
def patients_csv():
    if current_user.role != Role.ADMIN:
        abort(403)
    out = io.StringIO()
    write_csv(out, g.tenant)
    db.session.commit()
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{g.tenant.slug}-patients.csv"',
            "Cache-Control": "no-store",
        },
    )


@hookimpl
def relais_register_blueprints():
    return [bp]


@hookimpl
def relais_menu_items():
    return [
        MenuItem(
            label=_l("Export"),
            endpoint="exports.patients_csv",
            roles=("admin",),
            section="settings",
        )
    ]


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "delimiter",
            _l("CSV delimiter"),
            default=",",
            parse=_delimiter,
            help=_l("',' or ';' (what spreadsheets in France expect) or 'tab'"),
        )
    ]


@hookimpl
def relais_register_commands(cli):
    @cli.group("exports")
    def exports():
        """Export a clinic's data."""

    @exports.command("patients")
    @tenant_option(feature="exports")
    def export_patients(tenant):
        """Write the clinic's patients as CSV to standard output."""
        count = write_csv(sys.stdout, tenant)
        db.session.commit()
        click.echo(f"{count} patients exported.", err=True)
