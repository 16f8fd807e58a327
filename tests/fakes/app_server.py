"""A Relais app served on 127.0.0.1, reachable at the public URLs it gives providers.

Relais gives a provider public addresses for its webhooks, such as
``https://demo.relais.test/webhooks/infobip_sms/receipts``. In production DNS leads there and
a proxy terminates TLS; here :meth:`AppServer.post` plays both: it connects to the loopback
server over plain HTTP and keeps the URL's host in the ``Host`` header, which is what the app
resolves the clinic from. Only hosts of the app's ``SERVER_NAME`` are served: a fake provider
never posts anywhere else.

Usage (a fake provider takes ``post`` as the way it calls webhooks)::

    with AppServer(app) as server:
        fake = FakeInfobip(post=server.post)
"""

import threading
from urllib.parse import urlsplit, urlunsplit

import httpx
from flask import Flask
from werkzeug.serving import make_server


class AppServer:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.domain = app.config["SERVER_NAME"].split(":")[0]
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="relais-app-server", daemon=True
        )
        # One transport for every request (a client of its own per request, so that no
        # cookie carries over): building an httpx client's TLS context for each webhook cost
        # tens of milliseconds, more than the app's answer. No connection is kept open.
        self.transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    def __enter__(self) -> "AppServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.transport.close()

    def post(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST ``content`` to the public ``url`` as a provider would; the app's answer."""
        return self.request("POST", url, content=content, headers=headers)

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs
    ) -> httpx.Response:
        """Send a request to the public ``url`` as the proxy would pass it on (``kwargs``:
        httpx's, such as ``data`` or ``timeout``); the app's answer."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != self.domain and not host.endswith("." + self.domain):
            raise ValueError(f"{url} is not an address of this app ({self.domain})")
        local = urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        sent = {**(headers or {}), "Host": parts.netloc.rpartition("@")[2]}
        sent["X-Forwarded-Proto"] = "https"
        kwargs.setdefault("timeout", 10)
        client = httpx.Client(transport=self.transport, trust_env=False)
        return client.request(method, local, headers=sent, **kwargs)
