"""The operator console at ``operator.<domain>``: clinics, plugins per country, settings,
providers per channel, delivery KPIs."""

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core import validation
from core.clinic import settings
from core.db import db
from core.delivery import health, invitations, kpis, limits, onboarding, routing
from core.delivery.log import channel_labels, purpose_labels, status_labels
from core.delivery.models import Message
from core.delivery.providers import declared_providers
from core.errors import Conflict, NotFound, ValidationError
from core.i18n import country_name, format_duration, format_number, format_percent
from core.plugins import host
from tenants import provisioning, scoping
from tenants.country_warnings import all_country_warnings, country_warnings
from tenants.models import Operator

bp = Blueprint("console", __name__)


@bp.before_request
@login_required
def require_operator():
    if not isinstance(current_user, Operator):
        abort(404)
    scoping.enter(scoping.SYSTEM)


@bp.route("/", methods=["GET", "POST"])
def index():
    error = None
    if request.method == "POST":
        form = request.form
        try:
            tenant = provisioning.create_tenant(
                form.get("name", ""),
                form.get("subdomain", ""),
                form.get("country", ""),
                form.get("timezone") or None,
            )
            if form.get("admin_email", "").strip() or form.get("admin_name", "").strip():
                _invite(tenant, form.get("admin_email", ""), form.get("admin_name", ""), "admin_")
        except (ValidationError, Conflict) as exc:  # both name a field of the form
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Clinic %(name)s created.", name=tenant.name))
            return redirect(url_for(".index"))
    return _index_page(error=error)


def _index_page(error=None, signup_error=None):
    """The clinics' page, with the error of its new-clinic form or of a sign-up switch."""
    shown = error or signup_error
    return render_template(
        "console/index.html",
        tenants=provisioning.tenants(),
        invitations=invitations.all_invitations(),
        countries=_country_names(),
        all_countries=provisioning.countries(),
        warnings=all_country_warnings(),
        error=error,
        signup_error=signup_error,
        submitted=request.form if error else {},
    ), (shown.status if shown else 200)


@bp.post("/clinics/<slug>/suspension")
def suspension(slug: str):
    """Suspend a clinic (``suspend=1``) or reactivate it (``suspend=0``)."""
    try:
        tenant = provisioning.tenant_by_slug(slug)
    except NotFound:
        abort(404)
    if request.form.get("suspend") == "1":
        onboarding.suspend(tenant)
        done = _("%(name)s is suspended: its address answers that it is.")
    else:
        onboarding.reactivate(tenant)
        done = _("%(name)s is active again.")
    db.session.commit()
    flash(done % {"name": tenant.name})
    return redirect(url_for(".index"))


@bp.post("/countries/<code>/signup")
def country_signup(code: str):
    """Open (``allowed=1``) or close self sign-up for a country's practitioners."""
    try:
        country = onboarding.set_self_signup(code, request.form.get("allowed") == "1")
    except ValidationError:
        abort(404)
    except Conflict as exc:  # no plugin proves phones there: it stays closed
        db.session.rollback()
        return _index_page(signup_error=exc)
    db.session.commit()
    name = country_name(country.code)
    flash(
        _("Practitioners in %(country)s can sign their clinics up.", country=name)
        if country.self_signup
        else _("Self sign-up is closed in %(country)s.", country=name)
    )
    return redirect(url_for(".index"))


@bp.route("/clinics/<slug>/invitation", methods=["GET", "POST"])
def invitation(slug: str):
    """Invite a clinic's first admin (again: a new link replaces the one before)."""
    try:
        tenant = provisioning.tenant_by_slug(slug)
    except NotFound:
        abort(404)
    error = None
    if request.method == "POST":
        try:
            sent = _invite(tenant, request.form.get("email", ""), request.form.get("name", ""))
        except (ValidationError, Conflict) as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Invitation sent to %(email)s.", email=sent.email))
            return redirect(url_for(".invitation", slug=tenant.slug))
    current = invitations.invitation_of(tenant)
    message = current and db.session.get(Message, (tenant.id, current.message_id))
    return render_template(
        "console/invitation.html",
        clinic=tenant,
        invitation=current,
        email_status=status_labels().get(message.status) if message else None,
        error=error,
        submitted=request.form,
    ), (error.status if error else 200)


def _invite(tenant, email: str, name: str, prefix: str = ""):
    """Invite through the domain, with the operator as the one who acts; an error names the
    form's field (``admin_email`` on the new-clinic form)."""
    try:
        return invitations.invite(tenant, email, name, by="operator")
    except (ValidationError, Conflict) as exc:
        exc.field = f"{prefix}{exc.field}" if exc.field else exc.field
        raise


@bp.route("/plugins", methods=["GET", "POST"])
def plugins():
    countries = provisioning.countries()
    if request.method == "POST":
        provisioning.set_country_plugin(
            request.form.get("country", ""),
            request.form.get("plugin", ""),
            request.form.get("enabled") == "1",
        )
        db.session.commit()
        return redirect(url_for(".plugins"))
    enabled = {c.code: provisioning.country_plugins(c.code) for c in countries}
    infos = sorted(host().info.values(), key=lambda i: (i.kind, i.name))
    return render_template(
        "console/plugins.html",
        plugins=infos,
        kinds={"channel": _("Channel"), "regulation": _("Country rules"), "feature": _("Feature")},
        countries=countries,
        enabled=enabled,
        configurable={i.name for i in infos if settings.schema(i.name)},
        warnings=all_country_warnings(),
    )


@bp.route("/plugins/<plugin>/settings/<country>", methods=["GET", "POST"])
def plugin_settings(plugin: str, country: str):
    info = host().info.get(plugin)
    schema = settings.schema(plugin) if info else []
    if not schema:
        abort(404)
    try:
        where = provisioning.country(country)
    except ValidationError:
        abort(404)  # an address naming no country is a page that does not exist
    error = None
    if request.method == "POST":
        try:
            settings.save(where.code, plugin, request.form)
        except ValidationError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Settings saved."))
            return redirect(url_for(".plugin_settings", plugin=plugin, country=where.code))
    return render_template(
        "console/settings.html",
        info=info,
        schema=schema,
        country=where,
        values=settings.stored(where.code, plugin),
        warnings=country_warnings(where),
        error=error,
        submitted=request.form,
    ), (error.status if error else 200)


# --- sending limits ---------------------------------------------------------------------------


@bp.get("/limits")
def limits_index():
    """Every country's sending limits, and how many clinics have their own."""
    countries = provisioning.countries()
    return render_template(
        "console/limits.html",
        countries=countries,
        values={c.code: limits.country_limits(c.code) for c in countries},
        overrides={c.code: len(limits.overrides(c.code)) for c in countries},
        labels=_limit_labels(),
    )


@bp.route("/limits/<code>", methods=["GET", "POST"])
def country_limits(code: str):
    """A country's limits (``POST``: save them) and the clinics that have their own; a
    clinic named in ``clinic`` (``POST`` with ``action=find``) opens its own limits."""
    country = _country_or_404(code)
    error = None
    if request.method == "POST":
        try:
            if request.form.get("action") == "find":
                tenant = _clinic_of(country, request.form.get("clinic", ""))
                return redirect(url_for(".clinic_limits", code=country.code, slug=tenant.slug))
            limits.set_limits(_limits_form(), country_code=country.code)
        except ValidationError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("The limits of %(country)s are saved.", country=country_name(country.code)))
            return redirect(url_for(".country_limits", code=country.code))
    return render_template(
        "console/country_limits.html",
        country=country,
        values=settings.stored(country.code, limits.NAME),
        overrides=limits.overrides(country.code),
        labels=_limit_labels(),
        error=error,
        submitted=request.form if error else {},
    ), (error.status if error else 200)


@bp.route("/limits/<code>/clinics/<slug>", methods=["GET", "POST"])
def clinic_limits(code: str, slug: str):
    """A clinic's own limits over its country's (``action=remove``: back to the country's),
    beside today's use of its budgets."""
    country = _country_or_404(code)
    try:
        tenant = _clinic_of(country, slug)
    except ValidationError:
        abort(404)
    error = None
    if request.method == "POST":
        try:
            if request.form.get("action") == "remove":
                limits.remove_override(tenant)
                done = _("%(clinic)s follows the limits of its country again.")
            else:
                limits.set_limits(_limits_form(), tenant=tenant)
                done = _("The limits of %(clinic)s are saved.")
        except ValidationError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(done % {"clinic": tenant.name})
            return redirect(url_for(".clinic_limits", code=country.code, slug=tenant.slug))
    return render_template(
        "console/clinic_limits.html",
        country=country,
        clinic=tenant,
        own=settings.clinic_values(tenant, limits.NAME),
        inherited=limits.country_limits(country.code),
        labels=_limit_labels(),
        uses=limits.usage(tenant),
        channels=channel_labels(),
        purposes=purpose_labels(),
        error=error,
        submitted=request.form if error else {},
    ), (error.status if error else 200)


def _limit_labels() -> dict[str, str]:
    """Each limit's label, its channel named in the reader's language."""
    channels = channel_labels()
    return {
        s.name: _(
            "Messages a day by %(channel)s, for each purpose",
            channel=channels[s.name.removeprefix("per_day_")],
        )
        if s.name.startswith("per_day_")
        else str(s.label)
        for s in limits.SETTINGS
    }


def _limits_form() -> dict[str, str]:
    """The limits of a submitted form (its other fields, the CSRF token, aside)."""
    return {s.name: request.form.get(s.name, "") for s in limits.SETTINGS}


def _country_or_404(code: str):
    try:
        return provisioning.country(code)
    except ValidationError:
        abort(404)  # an address naming no country is a page that does not exist


def _clinic_of(country, slug: str):
    """The clinic of ``country`` at ``slug``. :raises ValidationError: on ``clinic``."""
    try:
        tenant = provisioning.tenant_by_slug(slug.strip().lower())
    except (NotFound, ValidationError):
        tenant = None
    if tenant is None or tenant.country_code != country.code:
        raise ValidationError(
            _("No clinic of %(country)s has this subdomain.", country=country_name(country.code)),
            "clinic",
        )
    return tenant


# --- providers per channel -------------------------------------------------------------------


@bp.route("/providers", methods=["GET", "POST"])
def providers():
    """Which providers carry each channel in each country: priority first, then weight."""
    error, form = None, request.form
    if request.method == "POST":
        try:
            if form.get("action") == "remove":
                routing.remove_route(form.get("country", ""), form.get("provider", ""))
                done = _("%(provider)s is no longer used in %(country)s.")
            else:
                routing.set_route(
                    form.get("country", ""),
                    form.get("provider", ""),
                    validation.whole_number(form.get("priority"), "priority"),
                    validation.whole_number(form.get("weight"), "weight"),
                )
                done = _("%(provider)s is used in %(country)s.")
        except (ValidationError, NotFound) as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(done % {"provider": form["provider"], "country": form["country"].upper()})
            return redirect(url_for(".providers"))
    labels = channel_labels()
    return render_template(
        "console/providers.html",
        routes=routing.configured_routes(),
        countries=_country_names(),
        providers={
            name: f"{name} ({labels.get(declared.channel, declared.channel)})"
            for name, declared in sorted(declared_providers().items())
        },
        labels=labels,
        error=error,
        submitted=form,
    ), (error.status if error else 200)


def _country_names() -> dict[str, str]:
    return {c.code: country_name(c.code) for c in provisioning.countries()}


# --- delivery KPIs ----------------------------------------------------------------------------


@bp.get("/kpis.json")
def kpis_json():
    """Delivery KPIs over ``from``/``to`` (ISO 8601 with offset) grouped by ``group``."""
    try:
        start, end = kpis.parse_window(request.args)
        group = kpis.grouping(request.args.get("group", "country"))
    except ValidationError as exc:
        return jsonify(exc.as_json()), exc.status
    tables = kpis.kpi_tables(start, end, [(group,), ()])
    rows = tables[(group,)]
    body = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group": group,
        "rows": [row.as_json((group,)) for row in rows],
        "total": tables[()][0].as_json(),
    }
    if group == "clinic":
        names = kpis.clinic_names(r.key[0] for r in rows)
        for row in body["rows"]:
            row["clinic_name"] = names.get(row["clinic"])
    return jsonify(body)


@bp.get("/kpis")
def kpis_page():
    choice = request.args.get("window") or "hour"
    error = start = end = None
    try:
        if choice == "custom":
            start, end = kpis.parse_local_window(request.args.get("from"), request.args.get("to"))
        else:
            start, end = kpis.preset_window(choice)
    except ValidationError as exc:
        error = exc
    tables, total, failures = {}, None, []
    if error is None:
        found = kpis.kpi_tables(start, end, [(name,) for name in kpis.GROUPS] + [()])
        tables = {name: found[(name,)] for name in kpis.GROUPS}
        total = found[()][0]
        failures = kpis.failure_reasons(start, end)
    return render_template(
        "console/kpis.html",
        choice=choice,
        start=start,
        end=end,
        submitted=request.args,
        error=error,
        tables=tables,
        total=total,
        labels=_kpi_labels(tables),
        percent=_percent,
        seconds=_seconds,
        within=kpis.WITHIN,
        failures=failures,
        failure_kinds={
            "refused": _("Refused by the provider"),
            "unavailable": _("Provider unavailable"),
            "unreachable": _("Number or address unreachable"),
            "undelivered": _("Not delivered (receipt)"),
            "denied": _("Refused by the rules"),
        },
        health_rows=health.current(),
        health_events=health.recent_events(20),
        health_rules=health.rules(),
        health_floor=health.FLOOR,
        duration=format_duration,
    ), (error.status if error else 200)


def _kpi_labels(tables) -> dict[str, dict]:
    """What each grouping's keys are called on the page."""
    return {
        "country": _country_names(),
        "clinic": kpis.clinic_names(r.key[0] for r in tables.get("clinic", [])),
        "channel": channel_labels(),
        "provider": {},
    }


def _percent(value: float | None) -> str:
    return format_percent(value, 1)


def _seconds(value: float | None) -> str:
    return "—" if value is None else _("%(seconds)s s", seconds=format_number(value, 2))
