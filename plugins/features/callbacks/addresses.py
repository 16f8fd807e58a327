"""Where a callback may go: an https URL whose host resolves only to public addresses (no
SSRF towards the deployment's own network), checked at registration and again at each send
(a name may resolve elsewhere since), and the POST made to the very address checked.

A deployment's operator may allow plain http and private addresses (the ``allow_private``
setting): on-premises software on the clinic's network, and the tests' loopback server.

Host names are looked up in DNS, unless the deployment's ``RESOLVE`` table answers for them
(as curl's ``--resolve`` does): a split-horizon name pinned by its operator, and the tests,
which must not depend on the network.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _

from core.plugin_api import ValidationError, check
from plugins.features.callbacks.models import MAX_URL

TIMEOUT = 10.0  # seconds for the whole POST


@dataclass(frozen=True)
class Target:
    """A checked callback URL and the address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    ip: str


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _refused(reason: str, message: str) -> ValidationError:
    """A refusal on ``url``; ``reason`` (``scheme``, ``unresolved``, ``private``) is what the
    delivery log keeps, to show in the reader's language."""
    error = ValidationError(message, "url")
    error.reason = reason
    return error


def parse_url(value, allow_private: bool) -> str:
    """The URL as typed, if it is one callbacks may use (resolving its host).

    :raises ValidationError: on ``url``, saying why.
    """
    url = check.text(value, "url", MAX_URL)
    target(url, allow_private)
    return url


def target(url: str, allow_private: bool) -> Target:
    """Check ``url`` and resolve its host.

    :raises ValidationError: on ``url`` when it is not an https URL, or its host does not
        resolve, or resolves to a private, loopback, link-local, multicast or reserved address
        (unless ``allow_private``).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused("scheme", _("Enter an address starting with https://.")) from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise _refused("scheme", _("Enter an address starting with https://."))
    port = port or (443 if parts.scheme == "https" else 80)
    ips = resolve(parts.hostname, port)
    if not ips:
        raise _refused("unresolved", _("This address's host name is not found."))
    if not allow_private and any(_forbidden(ip) for ip in ips):
        raise _refused(
            "private", _("This address leads to a private network: use a public address.")
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, str(ips[0]))


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses ``host`` stands for (none when it is not found): an address as written,
    else the deployment's ``RESOLVE`` table's answer for the name (or for ``"*"``, any other
    name), else DNS's."""
    try:
        return [ipaddress.ip_address(host.split("%")[0])]
    except ValueError:
        pass
    table = current_app.config.get("RESOLVE") or {}
    fixed = table.get(host.lower().rstrip("."), table.get("*"))
    if fixed is not None:
        return [ipaddress.ip_address(ip) for ip in fixed]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target) -> None:
        super().__init__(target.host, target.port, timeout=TIMEOUT)
        self.ip = target.ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self.ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target) -> None:
        super().__init__(target.host, target.port, timeout=TIMEOUT)
        self.ip = target.ip

    def connect(self) -> None:
        sock = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str]) -> tuple[int, int]:
    """POST ``body`` to the checked address (not to whatever the name resolves to now).

    :return: the HTTP status and the latency in milliseconds.
    :raises OSError: on a network error or a timeout.
    """
    connection = (_PinnedHTTPS if target.scheme == "https" else _PinnedHTTP)(target)
    started = time.monotonic()
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(10_000)  # the answer is not kept; a little is read to end the exchange
        return response.status, int((time.monotonic() - started) * 1000)
    except http.client.HTTPException as exc:
        raise OSError(f"bad HTTP answer: {type(exc).__name__}") from exc
    finally:
        connection.close()
