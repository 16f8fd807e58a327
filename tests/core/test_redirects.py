"""A ``next`` parameter sends a browser to a path of the same host, never elsewhere."""

import pytest

from core.web.redirects import same_host_path
from tests.worlds import client_for, csrf_token

ELSEWHERE = [
    "/\t/evil.example",  # browsers drop the tab: //evil.example
    "/\n/evil.example",
    "/\r\n/evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",  # a backslash reads as a slash
    "\\\\evil.example",
    "/%09/evil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    " //evil.example",
    "evil.example",
    "",
]


@pytest.mark.parametrize("target", ELSEWHERE)
def test_the_language_form_never_sends_a_browser_to_another_host(app, clinic_fr, target):
    client = client_for(app, clinic_fr.slug)
    answer = client.post(
        "/language", data={"lang": "en", "next": target, "csrf_token": csrf_token(client, "/login")}
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/", repr(target)


@pytest.mark.parametrize("target", ["/login", "/me/?tab=1", "/patients/a%20b#top"])
def test_a_path_of_this_host_is_followed(app, clinic_fr, target):
    client = client_for(app, clinic_fr.slug)
    answer = client.post(
        "/language", data={"lang": "en", "next": target, "csrf_token": csrf_token(client, "/login")}
    )
    assert answer.headers["Location"] == target


@pytest.mark.parametrize("target", [*ELSEWHERE, None, "/\x7f/evil.example", "/\x85/x"])
def test_the_helper_falls_back_on_anything_but_a_plain_path(target):
    assert same_host_path(target, "/home") == "/home"
