"""Real HTTP providers for bench.pipeline: the loopback fakes of Infobip and Twilio (tests/fakes)
in a process of their own, and the app's webhooks served by gunicorn for their receipts.

The fake posts its delivery reports to the public URLs Relais gave it, as the real provider
would, and they reach the gunicorn serving the app (as tests/fakes/app_server.py does for
tests): the CPU of each (fake, webhooks) is counted apart from the workers' and the
producer's. The bench talks to the fake through a pipe: the settings to save for the
provider, then, when asked, what the fake saw.
"""

from __future__ import annotations

import multiprocessing
import queue
import secrets
from collections import Counter
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

# What each provider is called in Relais: its plugin, its SMS provider's name.
PLUGINS = {"infobip": "sms_infobip", "twilio": "sms_twilio"}
PROVIDERS = {"outbox": "outbox_sms", "infobip": "infobip_sms", "twilio": "twilio_sms"}


def serve(kind: str, webhooks: str, domain: str, conn) -> None:
    """The fake provider ``kind``, posting its webhooks to the app served at ``webhooks``
    (the public URLs Relais gave it, under ``domain``, reach it there with their Host), until
    the bench says ``"stop"``."""
    app = urlsplit(webhooks)
    idle: queue.LifoQueue[HTTPConnection] = queue.LifoQueue()  # kept-alive, for any thread

    def post(url: str, content: bytes, headers: dict[str, str]):
        parts = urlsplit(url)
        if not (parts.hostname or "").endswith("." + domain):
            raise ValueError(f"{url} is not an address of the app")
        path = urlunsplit(("", "", parts.path, parts.query, ""))
        sent = {**headers, "Host": parts.netloc, "X-Forwarded-Proto": "https"}
        for attempt in (1, 2):  # again on a new connection when gunicorn closed the kept one
            try:
                connection = idle.get_nowait()
            except queue.Empty:
                connection = HTTPConnection(app.hostname, app.port, timeout=30)
            try:
                connection.request("POST", path, body=content, headers=sent)
                response = connection.getresponse()
                response.read()
            except (HTTPException, OSError) as exc:
                connection.close()
                if attempt == 2:
                    raise OSError(f"the app did not answer: {exc!r}") from exc
                continue
            idle.put(connection)
            return SimpleNamespace(status_code=response.status)
        raise AssertionError("unreachable")

    if kind == "infobip":
        from tests.fakes.infobip import API_KEY, FakeInfobip

        fake = FakeInfobip(post=post)
        fake.report_delay = 0.2  # each send's reports leave 0.2 s after it, by 100
        fake.__enter__()
        settings = {
            "api_key": API_KEY,
            "base_url": fake.url,
            "sender": "Relais",
            "webhook_secret": secrets.token_hex(16),
        }
    else:
        from tests.fakes.twilio import FakeTwilio

        # Twilio posts each callback on its own, many at once: 16 threads, not a 4-wide queue.
        fake = FakeTwilio(post=post, callback_threads=16).start()
        settings = {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "sender": "+33939030101",  # a landline: France refuses mobile senders
            "base_url": fake.base_url,
        }
    conn.send(settings)
    while conn.recv() != "stop":
        conn.send(_seen(kind, fake))
    conn.send(_seen(kind, fake))
    fake.__exit__(None, None, None) if kind == "infobip" else fake.close()


def _seen(kind: str, fake) -> dict:
    if kind == "infobip":
        return {"taken": len(fake.message_ids()), "twice": len(fake.duplicates())}
    # Twilio keeps no id of ours: a message created twice shows as more creates than sends.
    answers = Counter(str(c.status) for c in fake.callbacks)
    return {"taken": len(fake.messages), "twice": None, "callbacks": dict(answers)}


@dataclass
class FakeProvider:
    """The process of a fake provider, as the bench sees it."""

    kind: str
    process: multiprocessing.Process
    conn: object
    settings: dict

    @classmethod
    def start(cls, kind: str, webhooks: str, domain: str, children) -> FakeProvider:
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        process = children.spawn(f"fake-{kind}", serve, kind, webhooks, domain, theirs)
        if not ours.poll(60):
            raise RuntimeError(f"the fake {kind} did not start within 60 s")
        return cls(kind, process, ours, ours.recv())

    def seen(self) -> dict:
        """How many messages the fake took, and how many it got twice."""
        self.conn.send("seen")
        return self.conn.recv()

    def stop(self, children) -> dict:
        self.conn.send("stop")
        seen = self.conn.recv() if self.conn.poll(30) else {}
        children.stop(f"fake-{self.kind}")
        return seen


def start_webhooks(config: dict, children) -> str:
    """gunicorn serving the app (2 workers x 16 threads: one per core, as a deployment runs
    it; one process alone is held to one core by the GIL, and Twilio's two callbacks a
    message then queue behind it) for the providers' webhooks; its URL."""
    from bench.api import start_gunicorn

    return start_gunicorn(SimpleNamespace(workers=2, threads=16), children, config, baseline=False)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (gunicorn's master and its workers)."""
    found = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found
