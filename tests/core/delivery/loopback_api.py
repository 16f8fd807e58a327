"""LoopbackApi: a small SMS provider API on 127.0.0.1, recording what it is asked to send.

POST /messages {"reference", "to", "text"} → 201 {"id"}; GET /messages?reference= → the
messages with that reference. ``delay`` holds each send's answer after recording it, as a
slow provider would: a client killed meanwhile never learns that the message was taken.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

FAILURES = {
    "temporary": (503, {"error": "service unavailable"}),
    "permanent": (401, {"error": "bad credentials"}),
    "unreachable": (400, {"error": "invalid_number"}),
}


class LoopbackApi:
    def __init__(self) -> None:
        self.received: list[dict] = []
        self.delay = 0.0
        self.failures: list[str] = []  # what the next sends do instead of taking the message
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    failure = api.failures.pop(0) if api.failures else None
                if failure == "timeout":
                    time.sleep(3)
                    return self._answer(503, {"error": "too late"})
                if failure in FAILURES:
                    return self._answer(*FAILURES[failure])
                record = {**body, "id": uuid.uuid4().hex}
                with api.lock:
                    api.received.append(record)
                time.sleep(api.delay)
                self._answer(201, {"id": record["id"]})

            def do_GET(self):  # noqa: N802
                reference = parse_qs(urlparse(self.path).query).get("reference", [""])[0]
                with api.lock:
                    found = [m for m in api.received if m["reference"] == reference]
                self._answer(200, {"messages": found})

            def _answer(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def fail(self, kind: str) -> None:
        """The next send fails this way (see FAILURES; "timeout" answers after 3 s)."""
        with self.lock:
            self.failures.append(kind)

    def references(self) -> list[str]:
        with self.lock:
            return [m["reference"] for m in self.received]
