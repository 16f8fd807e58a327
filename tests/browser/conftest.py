"""A real Relais server on loopback, driven through Debian's Chromium, with axe-core audits.

The server is a second app on the test database the session ``app`` fixture migrates; the
tests depend on ``app``, so the schema exists and every table is emptied after each test.
Chromium resolves ``*.localhost`` to 127.0.0.1: clinics are at ``http://<slug>.localhost:<port>``
and the console at ``http://operator.localhost:<port>``.
"""

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from flask_babel import force_locale, gettext, ngettext
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from werkzeug.serving import make_server

from tests.worlds import Account, app_with

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BLOCKING = ("serious", "critical")  # axe impacts a page must not have
# axe-core leaves its experimental rules off; WCAG 2.5.3 (a control's name holds its visible
# text) is one of them, and one a page must pass. Strict audits turn them all on.
AXE_OPTIONS = {
    "resultTypes": ["violations"],
    "rules": {"label-content-name-mismatch": {"enabled": True}},
}
EXPERIMENTAL = (
    "css-orientation-lock",
    "focus-order-semantics",
    "hidden-content",
    "label-content-name-mismatch",
    "p-as-heading",
    "table-fake-caption",
    "td-has-header",
)
STRICT_OPTIONS = {
    "resultTypes": ["violations"],
    "rules": {rule: {"enabled": True} for rule in EXPERIMENTAL},
}
TIMEOUT_MS = 10_000  # auto-waiting limit: a page that needs longer is a failure

# Each new document gets an id, so the audit can tell which documents were checked.
DOCUMENT_ID = "window.__relaisDocument = Math.random().toString(36).slice(2) + Date.now();"
# Every Content-Security-Policy violation a document meets is written to the console, where
# the page fixture collects it (Chromium also logs its own line for each).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
});
"""


@dataclass
class LiveServer:
    app: Flask
    port: int

    def url(self, subdomain: str, path: str = "") -> str:
        return f"http://{subdomain}.localhost:{self.port}{path}"


def _not_ready(environ, start_response):  # pragma: no cover - replaced before serving
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@contextlib.contextmanager
def serve(config: dict | None = None) -> Iterator[LiveServer]:
    """A Relais app (``config`` over the tests', such as other ``PLUGINS``) served on
    loopback for Chromium until the block ends."""
    # Bind first (port 0: the system picks a free one), then build the app that must know it.
    server = make_server("127.0.0.1", 0, _not_ready, threaded=True)
    port = server.server_port
    served = {"SERVER_NAME": f"localhost:{port}", "SESSION_COOKIE_SECURE": False}
    with app_with({**served, **(config or {})}) as live_app:
        server.app = live_app
        thread = threading.Thread(target=server.serve_forever, name="relais-live", daemon=True)
        thread.start()
        try:
            yield LiveServer(live_app, port)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(app) -> LiveServer:
    """The app with the built-in plugins, served for the whole run."""
    with serve() as server:
        yield server


@pytest.fixture(scope="session")
def translate(live_server):
    """``translate("fr")`` gives the ``_`` of a locale: tests find what the user reads in the
    language the page is in (a French clinic's pages are in French), whatever its wording."""

    def translate(locale: str):
        def _(message: str, plural: str | None = None, num: int | None = None, **variables):
            with live_server.app.app_context(), force_locale(locale):
                if plural is not None:
                    return ngettext(message, plural, num, **variables)
                return gettext(message, **variables)

        return _

    return translate


@pytest.fixture(scope="session")
def browser() -> Browser:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def watch_csp(context: BrowserContext) -> list[str]:
    """The Content-Security-Policy violations the documents of ``context`` will report
    (the listener's lines and Chromium's own), as a list that fills as pages load."""
    violations: list[str] = []
    context.add_init_script(CSP_LISTENER)

    def watch(message) -> None:
        if message.text.startswith("CSP violation:") or "Content Security Policy" in message.text:
            violations.append(f"{message.location.get('url')}: {message.text}")

    context.on("console", watch)
    return violations


@pytest.fixture
def page(live_server, browser) -> Page:
    """A fresh browser context (no cookies) per test; closed before the tables are emptied.
    A Content-Security-Policy violation reported in the console fails the test."""
    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    context.add_init_script(DOCUMENT_ID)
    violations = watch_csp(context)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


@dataclass
class Audit:
    """Runs axe-core on the page shown; at the end of the test, every document the page
    loaded must have been checked once."""

    page: Page
    axe: Axe = field(default_factory=Axe)
    loads: list[str] = field(default_factory=list)
    checked: dict[str, str] = field(default_factory=dict)  # document id -> URL
    minor: list[str] = field(default_factory=list)  # moderate and minor findings, reported

    def __post_init__(self):
        self.page.on("load", lambda p: self.loads.append(p.url))

    def __call__(self, strict: bool = False) -> None:
        """Audit the page shown; ``strict``: every rule, experimental ones too, and a
        violation of any impact fails the test."""
        self.page.wait_for_load_state("load")
        document = self.page.evaluate("window.__relaisDocument")
        url = self.page.url
        options = STRICT_OPTIONS if strict else AXE_OPTIONS
        violations = self.axe.run(self.page, options=options).response["violations"]
        self.checked[document] = url
        blocking = [v for v in violations if strict or v["impact"] in BLOCKING]
        self.minor += [f"{url}: {v['id']} ({v['impact']})" for v in violations if v not in blocking]
        assert not blocking, f"axe-core on {url}:\n" + describe(blocking)

    def unchecked(self) -> str | None:
        """What went unchecked, if a loaded document was never audited."""
        loaded = [url for url in self.loads if url.startswith("http")]
        if len(self.checked) >= len(loaded):
            return None
        return f"loaded {loaded}, audited {list(self.checked.values())}"


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} [{v['impact']}] {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:
            lines.append(f"    at {', '.join(map(str, node['target']))}: {node['html'][:200]}")
            if node.get("failureSummary"):
                lines.append("      " + node["failureSummary"].replace("\n", "\n      "))
    return "\n".join(lines)


@pytest.fixture
def audit(page) -> Audit:
    """Call ``audit()`` on every page the test shows; a page left unchecked fails the test."""
    checker = Audit(page)
    yield checker
    for finding in checker.minor:
        print("axe (not blocking):", finding)
    missed = checker.unchecked()
    assert missed is None, f"a page was shown without an axe-core audit: {missed}"


@pytest.fixture
def log_in(page, audit, translate):
    """Log an enrolled account in through the real flow: password, then authenticator code."""

    def log_in(base: str, account: Account, locale: str = "en") -> None:
        _ = translate(locale)
        page.goto(base + "/login")
        audit()
        page.get_by_role("textbox", name=_("E-mail"), exact=True).fill(account.email)
        page.get_by_role("textbox", name=_("Password"), exact=True).fill(account.password)
        page.get_by_role("button", name=_("Continue")).click()
        page.wait_for_url(base + "/login/code")
        audit()
        code = page.get_by_role("textbox", name=_("Code"), exact=True)
        code.fill(pyotp.TOTP(account.totp_secret).now())
        page.get_by_role("button", name=_("Log in")).click()
        page.wait_for_url(base + "/")
        audit()

    return log_in
