"""Hello: greets the clinic's staff on a page of its own."""

from flask import Blueprint, g

from core.plugin_api import MenuItem, Provider, Setting, hookimpl, plugin_setting

kind = "feature"

bp = Blueprint("hello", __name__)
status_changes = []  # what relais_message_status_changed received, for the tests to read


class HelloSms(Provider):
    """A provider declaration, as channel plugins make them."""

    name = "hello_sms"
    channel = "sms"


@bp.get("/hello")
def index():
    return f"<p>{plugin_setting(g.tenant, 'hello', 'greeting')}, {g.tenant.name}</p>"


@hookimpl
def relais_register_blueprints():
    return [bp]


@hookimpl
def relais_register_channels():
    return [HelloSms]


@hookimpl
def relais_menu_items(tenant, user):
    return [MenuItem(label="Hello", endpoint="hello.index")]


@hookimpl
def relais_template_variables(tenant):
    return {"hello_greeting": f"Hello from {tenant.country_code}"}


@hookimpl
def relais_plugin_settings():
    return [
        Setting("greeting", "Greeting", default="Bonjour"),
        Setting("api_token", "API token", secret=True),
    ]


@hookimpl
def relais_message_status_changed(tenant, message_id, status):
    status_changes.append((tenant.slug, message_id, status))


@hookimpl
def relais_handle_inbound(text):
    return "greeted" if text.strip().upper() == "HELLO" else None


@hookimpl
def relais_register_commands(cli):
    @cli.command("hello")
    def hello():
        """Say hello."""
        print("hello from a plugin")
