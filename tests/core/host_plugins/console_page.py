"""A feature with a page for operators, through ``relais_register_console_pages``."""

from flask import Blueprint, render_template_string

from core.plugin_api import ConsolePage, hookimpl

kind = "feature"
bp = Blueprint("hello_console", __name__)


@bp.get("/hello")
def hello():
    return render_template_string(
        '{% extends "console/layout.html" %}{% block content %}<h1>Hello operators</h1>'
        "{% endblock %}"
    )


@hookimpl
def relais_register_console_pages():
    return [ConsolePage(bp, "Hello", "hello_console.hello")]
