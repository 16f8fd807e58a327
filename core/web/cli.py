"""The ``relais`` command line: Flask's click group with Relais' commands.

Plugins add commands through the ``relais_register_commands`` hook (see ``create_app``).
Bad input exits with code 2 and a sentence, changing nothing.
"""

import functools
import re
import sys

import click
import flask_migrate.cli
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import WSGIRequestHandler, run_simple

from core import schema
from core.app import create_app, long_lived
from core.clinic import apikeys
from core.clinic import settings as plugin_settings
from core.clinic.staff import create_user
from core.db import db
from core.delivery import invitations, jobs, limits, onboarding, retention, routing
from core.delivery.sweeper import Sweeper
from core.delivery.worker import Worker
from core.errors import DomainError
from core.plugins import enabled_plugins
from core.plugins import host as plugin_host
from core.web.demo import seed as seed_demo
from tenants import provisioning
from tenants.scoping import system_scope, tenant_scope

# Commands that run on a database not migrated yet: they migrate it, or do not touch it.
SCHEMA_FREE = frozenset({"db", "demo", "routes", "run", "shell"})


class RelaisGroup(FlaskGroup):
    """Flask's command group; a command that needs the database refuses one that is not
    migrated with a sentence naming the fix (exit code 2), not a traceback on a missing table."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in SCHEMA_FREE and not ctx.resilient_parsing and "--help" not in rest:
            problem = schema.not_migrated(ctx.ensure_object(ScriptInfo).load_app())
            if problem:
                click.echo(f"Error: {problem}", err=True)
                raise SystemExit(2)
        return name, command, rest


main = RelaisGroup(create_app=create_app, help="Relais: run, provision and operate the platform.")


def fail(message: str) -> None:
    """Stop a command on bad input: the sentence on stderr, exit code 2."""
    db.session.rollback()
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(2)


def domain_errors(command):
    """Turn domain errors into exit code 2 with their message; nothing is committed."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            fail(f"{exc.message}" + (f" ({exc.field})" if exc.field else ""))

    return wrapper


def tenant_option(feature: str | None = None):
    """``--tenant SLUG``: the command runs in that clinic's scope and is given ``tenant``.

    :param feature: a plugin that must be enabled for the clinic, else exit code 2.
    """

    def decorate(command):
        @click.option("--tenant", "slug", required=True, help="The clinic's subdomain.")
        @functools.wraps(command)
        def wrapper(slug, **kwargs):
            with system_scope():
                tenant = domain_errors(provisioning.tenant_by_slug)(slug)
                if feature and feature not in enabled_plugins(tenant):
                    fail(f"The {feature} plugin is not enabled for the clinic {slug}.")
            with tenant_scope(tenant.id):
                return domain_errors(command)(tenant=tenant, **kwargs)

        return wrapper

    return decorate


# --- demo -------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--serve/--no-serve", default=True, help="Start the web server afterwards.")
def demo(host: str, port: int, serve: bool):
    """Set up a demo platform (France, clinic 'demo', staff, patients) and serve it."""
    schema.upgrade()  # the core, then every installed plugin's tables
    server = f"localhost:{port}"
    # Plain HTTP on this machine only: cookies cannot be marked Secure here. Set before
    # seeding, in a new app context (its URL adapter reads SERVER_NAME when pushed), so
    # that links in the seeded messages name the port served.
    current_app.config.update(SERVER_NAME=server, SESSION_COOKIE_SECURE=False)
    with current_app.app_context(), system_scope():
        accounts = seed_demo()
        db.session.commit()
    click.echo("Relais demo is ready.\n")
    click.echo(f"  Clinic:   http://demo.{server}/")
    click.echo(f"  Operator: http://operator.{server}/\n")
    for role, email, password in accounts:
        click.echo(f"  {role:<10} {email:<28} password: {password}")
    click.echo(
        "\n  Passwords are new at every run. At first login, scan the QR code with an\n"
        "  authenticator app (or type the key shown under it).\n"
    )
    if current_app.config["REDIS_URL"]:
        click.echo("  Delivery: queued on Redis; start `relais worker` beside the server.")
    else:
        click.echo("  Delivery: in-process (RELAIS_REDIS_URL is not set).")
    if serve:
        Sweeper(current_app._get_current_object()).start()  # in-process delivery without Redis
        run_simple(
            host,
            port,
            current_app._get_current_object(),
            threaded=True,
            request_handler=PathOnlyLogHandler,
        )


# A signed link's token (itsdangerous: payload[.timestamp].signature), as in /access/<token>.
SIGNED_TOKEN = re.compile(r"[\w-]+(?:\.[\w-]+)?\.[\w-]{20,}")


class PathOnlyLogHandler(WSGIRequestHandler):
    """Logs requests without their query string (searches carry patients' names) nor the
    tokens of signed links (an invitation or access link opens an account)."""

    def log_request(self, code="-", size="-"):
        path = SIGNED_TOKEN.sub("[token]", self.path.split("?", 1)[0])
        self.log("info", '"%s %s" %s', self.command, path, code)


# --- tenants ----------------------------------------------------------------------------------


@main.group()
def tenants():
    """Create and list clinics."""


@tenants.command("create")
@click.argument("name")
@click.option("--subdomain", required=True, help="Where the clinic lives: <subdomain>.<domain>.")
@click.option("--country", required=True, help="ISO code, e.g. FR.")
@click.option("--timezone", default=None, help="Defaults to the country's.")
@domain_errors
def tenants_create(name, subdomain, country, timezone):
    """Create a clinic."""
    with system_scope():
        tenant = provisioning.create_tenant(name, subdomain, country, timezone)
        db.session.commit()
        click.echo(f"Created {tenant.name} at {tenant.slug}.{current_app.config['SERVER_NAME']}")


@tenants.command("list")
def tenants_list():
    """List clinics."""
    with system_scope():
        for t in provisioning.tenants():
            click.echo(f"{t.slug:<24} {t.country_code}  {t.timezone:<20} {t.name}")


@tenants.command("release-expired")
def tenants_release_expired():
    """Remove self-signed-up clinics whose first admin never used the invitation before it
    expired (no staff, no patient), so their subdomains can be taken again. The sweeper does
    it on each pass; this does it now."""
    with system_scope():
        released = onboarding.release_expired_signups()
        db.session.commit()
    click.echo(f"Released: {', '.join(released)}." if released else "Nothing to release.")


# --- plugins ----------------------------------------------------------------------------------


@main.group()
def plugins():
    """List plugins; enable or disable them per country."""


@plugins.command("list")
@click.option("--country", default=None, help="Also show whether each is enabled there.")
@domain_errors
def plugins_list(country):
    """List every installed plugin."""
    # An unknown code is an error, not a country where every plugin is off.
    enabled = provisioning.country_plugins(provisioning.country(country).code) if country else set()
    for info in sorted(plugin_host().info.values(), key=lambda i: (i.kind, i.name)):
        mark = ("on " if info.name in enabled else "off") if country else ""
        click.echo(
            f"{mark:<4}{info.name:<16} {info.kind:<11} {info.version:<8} "
            f"{info.source:<28} {info.description}"
        )


def _set_plugin(name: str, country: str, enabled: bool) -> None:
    with system_scope():
        provisioning.set_country_plugin(country, name, enabled)
        db.session.commit()
    click.echo(f"{name} {'enabled' if enabled else 'disabled'} for {country.upper()}.")


@plugins.command("enable")
@click.argument("name")
@click.option("--country", required=True)
@domain_errors
def plugins_enable(name, country):
    """Enable a plugin for every clinic of a country."""
    _set_plugin(name, country, True)


@plugins.command("disable")
@click.argument("name")
@click.option("--country", required=True)
@domain_errors
def plugins_disable(name, country):
    """Disable a plugin for every clinic of a country."""
    _set_plugin(name, country, False)


@plugins.command("configure")
@click.argument("name")
@click.argument("values", nargs=-1, metavar="KEY=VALUE... [SECRET_KEY...]")
@click.option("--country", required=True, help="ISO code, e.g. FR.")
@domain_errors
def plugins_configure(name, values, country):
    """Set a plugin's settings for a country, as the operator console does.

    Give each setting as KEY=VALUE; the others keep their value (KEY= empties one: its
    default applies). Name a secret without a value: it is read from standard input, one
    line per secret in the order named, or asked for at a hidden prompt; a secret is never
    taken from the command line nor shown.
    """
    with system_scope():
        code = provisioning.country(country).code
        if name not in plugin_host().info:
            fail(f"No plugin is named {name}.")
        declared = {s.name: s for s in plugin_settings.schema(name)}
        if not declared:
            fail(f"The {name} plugin has no settings.")
        given: dict[str, str] = {}
        for value in values:
            key, has_value, text = value.partition("=")
            setting = declared.get(key)
            if setting is None:
                fail(f"The {name} plugin has no setting {key!r}; it has: {', '.join(declared)}.")
            if setting.secret and has_value:
                fail(
                    f"{key} is a secret: name it without a value and give it on standard "
                    "input or at the prompt, never on the command line."
                )
            if not setting.secret and not has_value:
                fail(f"Give {key} a value: {key}=VALUE.")
            given[key] = _read_secret(setting) if setting.secret else text
        # The form as the console shows it (the country's own values), with the given ones.
        form = {key: _as_text(value) for key, value in _country_values(code, name).items()}
        form.update(given)
        plugin_settings.save(code, name, form)
        db.session.commit()
    shown = [f"{key} (secret)" if declared[key].secret else key for key in given]
    click.echo(f"Settings of {name} saved for {code}: {', '.join(shown) or 'none changed'}.")


def _read_secret(setting) -> str:
    """A secret, from a hidden prompt on a terminal, else a line of standard input."""
    if sys.stdin.isatty():
        return click.prompt(str(setting.label), hide_input=True)
    line = sys.stdin.readline().rstrip("\r\n")
    if not line.strip():
        fail(f"No value for the secret {setting.name} on standard input (one line per secret).")
    return line


def _country_values(code: str, plugin: str) -> dict:
    """The values stored for the country itself: not those kept for the whole deployment
    (a country that kept a copy would no longer follow them)."""
    deployment = plugin_settings.deployment(plugin)
    return {
        key: value
        for key, value in plugin_settings.stored(code, plugin).items()
        if key not in deployment or deployment[key] != value
    }


def _as_text(value) -> str:
    """A stored value as the console's form shows it (a bool as yes or no)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


# --- providers --------------------------------------------------------------------------------


@main.group()
def providers():
    """Choose the providers of each channel per country: priority, then weight."""


@providers.command("list")
@click.option("--country", default=None)
def providers_list(country):
    """List the operator's routes."""
    with system_scope():
        for r in routing.configured_routes(country):
            click.echo(
                f"{r.country_code}  {r.channel:<6} {r.provider:<20} "
                f"priority {r.priority:<3} weight {r.weight}"
            )


@providers.command("set")
@click.argument("provider")
@click.option("--country", required=True)
@click.option("--priority", type=int, default=1, show_default=True, help="1 is tried first.")
@click.option(
    "--weight",
    type=int,
    default=100,
    show_default=True,
    help="Share of traffic among providers of the same priority.",
)
@domain_errors
def providers_set(provider, country, priority, weight):
    """Route a country's traffic of the provider's channel to it."""
    with system_scope():
        route = routing.set_route(country, provider, priority, weight)
        db.session.commit()
        click.echo(
            f"{route.country_code} {route.channel}: {provider} priority {priority} weight {weight}"
        )


@providers.command("remove")
@click.argument("provider")
@click.option("--country", required=True)
@domain_errors
def providers_remove(provider, country):
    """Stop routing a country's traffic to a provider."""
    with system_scope():
        routing.remove_route(country, provider)
        db.session.commit()
        click.echo(f"{provider} no longer routed in {country.upper()}.")


# --- users ------------------------------------------------------------------------------------


@main.group()
def users():
    """Create staff and operator accounts; invite a clinic's first admin."""


@users.command("create")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--tenant", "slug", default=None, help="The clinic (omit with --operator).")
@click.option(
    "--role",
    type=click.Choice(["admin", "practitioner", "secretary"]),
    default="admin",
    show_default=True,
)
@click.option("--operator", is_flag=True, help="Create a country operator instead.")
@click.option("--password", default=None, help="Generated and printed when omitted.")
@click.option("--phone", default="", help="A staff member's mobile, where codes go.")
@domain_errors
def users_create(email, name, slug, role, operator, password, phone):
    """Create an account; it enrols an authenticator app at first login."""
    import secrets

    if operator == bool(slug):
        fail("Give either --tenant SLUG or --operator.")
    shown = password is None
    password = password or secrets.token_urlsafe(12)
    if operator:
        with system_scope():
            provisioning.create_operator(email, name, password)
            db.session.commit()
    else:
        with system_scope():
            tenant = provisioning.tenant_by_slug(slug)
        with tenant_scope(tenant.id):
            create_user(email, name, role, password, phone)
            db.session.commit()
    click.echo(f"Created {email}" + (f" with password {password}" if shown else ""))


@users.command("invite")
@click.argument("email")
@click.option("--name", required=True)
@tenant_option()
def users_invite(tenant, email, name):
    """E-mail a clinic's first admin a link to choose their password (it replaces any
    earlier invitation's link); they log in afterwards as every new staff member does."""
    invitation = invitations.invite(tenant, email, name, by="operator")
    db.session.commit()
    click.echo(
        f"Invitation sent to {invitation.email} for {tenant.slug}; "
        f"the link works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
    )


# --- API keys ---------------------------------------------------------------------------------


@main.group("apikeys")
def api_keys():
    """Create API keys for a clinic's integrators."""


@api_keys.command("create")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(list(apikeys.KINDS)),
    default="live",
    show_default=True,
    help="live sends; test: nothing leaves (a simulator answers); team: only to staff.",
)
@tenant_option()
@domain_errors
def apikeys_create(tenant, name, kind):
    """Create an API key for a clinic; it is printed once, as the clinic's page shows it."""
    key, token = apikeys.create_key(name, kind)  # audited as on the page
    db.session.commit()
    click.echo(
        f'Created the API key "{key.name}" for {tenant.slug}; copy it now, it is shown once:'
    )
    click.echo(token)


# --- sending limits ---------------------------------------------------------------------------


@main.group("limits")
def limits_group():
    """Set the clinics' sending limits: per country, and per clinic over its country's."""


@limits_group.command("set")
@click.argument("values", nargs=-1, metavar="KEY=VALUE...")
@click.option("--country", help="ISO code, e.g. FR: the country's limits.")
@click.option("--clinic", "slug", help="A clinic's subdomain: its own limits.")
@domain_errors
def limits_set(values, country, slug):
    """Set limits, e.g. ``per_minute=600 per_day_sms=20000`` (0: no limit; KEY= empties
    one: the level above applies). Each purpose has a budget of that size of its own."""
    if bool(country) == bool(slug):
        fail("Give either --country or --clinic.")
    form = {}
    for value in values:
        key, has_value, text = value.partition("=")
        if not has_value:
            fail(f"Give {key} a value: {key}=VALUE.")
        form[key] = text
    with system_scope():
        if slug:
            tenant = provisioning.tenant_by_slug(slug)
            with tenant_scope(tenant.id):
                limits.set_limits(form, tenant=tenant)
                db.session.commit()
                resolved = limits.limits_for(tenant)
        else:
            code = provisioning.country(country).code
            limits.set_limits(form, country_code=code)
            db.session.commit()
            resolved = limits.country_limits(code)
    shown = ", ".join(f"{k}={v or 'none'}" for k, v in resolved.items())
    click.echo(f"Limits of {slug or country.upper()}: {shown}.")


# --- worker -----------------------------------------------------------------------------------


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--queue",
    "only",
    multiple=True,
    type=click.Choice(jobs.QUEUES),
    help="Only this queue (repeatable), e.g. a worker kept for codes: --queue otp.",
)
def worker(burst: bool, only: tuple[str, ...]):
    """Run a worker on the delivery queues, highest priority first, with the scheduler."""
    if not current_app.config["REDIS_URL"]:
        fail("Set RELAIS_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run a worker.")
    # A SimpleWorker runs jobs in this process (no fork per job: ~5x the throughput), and
    # ours waits for Redis when it restarts instead of exiting. The database, not RQ, is the
    # source of truth, so a killed worker or a restarted Redis loses nothing.
    queues = [jobs.queue(name) for name in jobs.QUEUES if not only or name in only]
    sweeper = Sweeper(current_app._get_current_object(), purge=True)
    if not burst:
        sweeper.start()  # scheduled messages, retries, dead workers' leases, Redis losses;
        # and once a day in the deployment, the retention purge
    long_lived(current_app._get_current_object())
    try:
        Worker(queues, connection=jobs.redis()).work(burst=burst, with_scheduler=True)
    finally:
        sweeper.stopped.set()


# --- retention --------------------------------------------------------------------------------


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option("--country", "codes", multiple=True, help="Only this country (repeatable).")
@domain_errors
def purge(dry_run: bool, codes: tuple[str, ...]):
    """Erase and delete what each country's retention rules keep no longer."""
    with system_scope():
        # An unknown code is an error, not a country with nothing to purge.
        only = list(dict.fromkeys(provisioning.country(c).code for c in codes))
        only = only or retention.countries()
        clinics = sum(len(retention.clinics(code)) for code in only)
        db.session.rollback()
    with click.progressbar(length=clinics, label="Clinics", file=sys.stderr) as bar:
        report = retention.purge_by_country(
            dry_run=dry_run, only=only, on_clinic=lambda: bar.update(1)
        )
    for code, r in report.items():
        policy, n = r["policy"], r["counts"]
        source = f"{r['plugin']} plugin" if r["plugin"] else "default"
        click.echo(
            f"{code}  contents {policy.contents.days} days, records {policy.records.days} days "
            f"({source}): messages {n['messages_erased']} erased, {n['messages_deleted']} "
            f"deleted; replies {n['replies_erased']} erased, {n['replies_deleted']} deleted; "
            f"early receipts {n['early_receipts_deleted']} deleted"
        )
    if not report:
        click.echo("No clinic: nothing to purge.")
    if dry_run:
        click.echo("Dry run: nothing was changed.")


# --- db ---------------------------------------------------------------------------------------


@click.command("upgrade")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
@click.argument("revision", required=False)
@with_appcontext
def db_upgrade(sql: bool, revision: str | None):
    """Upgrade the core, then every installed plugin's tables (or to REVISION, e.g. otp@head)."""
    if revision is None:
        schema.upgrade(sql=sql)
    else:
        upgrade(revision=revision, sql=sql)


# Flask-Migrate's commands, but ``upgrade`` goes to every branch's head: with plugins' branches
# Alembic's "head" is ambiguous, and an operator runs one command.
main.add_command(
    click.Group(
        "db",
        commands={**flask_migrate.cli.db.commands, "upgrade": db_upgrade},
        params=flask_migrate.cli.db.params,
        callback=flask_migrate.cli.db.callback,
        help="Migrate the database: the core's history and each installed plugin's branch.",
    )
)
