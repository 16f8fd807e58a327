"""The Content-Security-Policy in Chromium: it blocks what it must, and the watch that fails
every browser test on a violation does see one."""

from tests.browser.conftest import watch_csp


def test_the_policy_blocks_an_inline_script_and_style_and_the_watch_reports_both(
    live_server, browser, clinic_fr
):
    """A clinic's real login page, with an inline script and a style attribute slipped in (as
    an injection would): neither runs nor applies, and each is reported."""
    context = browser.new_context()
    violations = watch_csp(context)
    url = live_server.url(clinic_fr.slug, "/login")

    def inject(route):
        # Node, not Chromium, makes this request: it reaches the server by its address.
        host = f"{clinic_fr.slug}.localhost:{live_server.port}"
        answer = route.fetch(
            url=f"http://127.0.0.1:{live_server.port}/login",
            headers={**route.request.headers, "host": host},
        )
        body = answer.text().replace(
            "</body>",
            '<script>document.title = "pwned"</script><p id="probe" style="color: red">x</p>'
            "</body>",
        )
        route.fulfill(response=answer, body=body)

    try:
        tab = context.new_page()
        tab.route(url, inject)
        tab.goto(url)
        tab.wait_for_load_state("load")
        assert tab.title() != "pwned"
        color = tab.eval_on_selector("#probe", "e => getComputedStyle(e).color")
        assert color != "rgb(255, 0, 0)"
    finally:
        context.close()
    assert any("script-src" in v for v in violations), violations
    assert any("style-src" in v for v in violations), violations
