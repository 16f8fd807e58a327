"""Campaigns' pages in the operator console: a campaign started in every clinic of a country
that has the feature, and its figures per clinic with progress bars.

Mounted by the core on the console's subdomain (``relais_register_console_pages``): only
operators reach it, in the system scope. Routes only: parse, call :mod:`.service`, render.
"""

import uuid

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from core.plugin_api import LANGUAGES, ValidationError, attribute_labels, db
from plugins.features.campaigns import service, views

bp = Blueprint("campaigns_console", __name__, template_folder="templates")
bp.context_processor(views.names)

# The clinic form's fields but the practitioner (each clinic has its own).
FIELDS = ("country", *(f for f in views.FIELDS if f != "practitioner_id"))


def _countries() -> dict[str, str]:
    """The countries with campaigns, named in the reader's language."""
    names = get_locale().territories
    return {code: names.get(code, code) for code in service.countries_with_campaigns()}


def _run(run: str) -> uuid.UUID:
    try:
        return uuid.UUID(run)
    except ValueError:
        abort(404)


@bp.route("/campaigns", methods=["GET", "POST"])
def country_page():
    """The form of a country-wide campaign, and the latest ones."""
    countries, error = _countries(), None
    values = {"channels": ["sms"], "default_language": "", "country": ""}
    if len(countries) == 1:
        values["country"] = next(iter(countries))
    if request.method == "POST":
        values = views.form_values()
        try:
            run, outcome = service.start_in_country(
                values.get("country") or "", values, by=current_user.email
            )
        except ValidationError as exc:
            db.session.rollback()
            error = exc
        else:
            started = [slug for slug, result in outcome.items() if result == "started"]
            flash(
                _(
                    "Started in %(started)d of %(total)d clinics.",
                    started=len(started),
                    total=len(outcome),
                )
            )
            for slug, result in outcome.items():
                if result != "started":
                    flash(_("%(clinic)s: not started: %(why)s", clinic=slug, why=result))
            return redirect(url_for(".run_page", run=run), 303)
    page = render_template(
        "campaigns/country.html",
        values=values,
        error=error,
        fields=FIELDS,
        countries=countries,
        languages=LANGUAGES,
        attributes=attribute_labels(),
        variable_names=", ".join(f"{{{{ {n} }}}}" for n in service.VARIABLES),
        runs=service.country_runs(),
    )
    return page, (error.status if error else 200)


@bp.get("/campaigns/runs/<run>")
def run_page(run):
    """A country-wide campaign's figures, per clinic, with a progress bar each."""
    figures = service.country_figures(_run(run))
    if not figures:
        abort(404)
    return render_template(
        "campaigns/country_run.html",
        run=run,
        figures=figures,
        name=next(iter(figures.values()))["name"],
    )


@bp.get("/campaigns/runs/<run>/progress")
def run_progress(run):
    """Per clinic (by its slug), the figures of the run, as the run page polls them."""
    figures = service.country_figures(_run(run))
    if not figures:
        abort(404)
    return jsonify(figures)


@bp.get("/campaigns/campaigns.js")
def script():
    """The pages' script (the progress bars' polling)."""
    return Response(
        (views.STATIC / "campaigns.js").read_bytes(),
        mimetype="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )
