"""CallbackReceiver: a clinic's software receiving Relais' status callbacks on 127.0.0.1.

Every POST is kept in :attr:`received` (headers, raw body, the status answered); answers
come from :meth:`answer_next` (e.g. 500 twice), else 200, after ``delay`` seconds.
"""

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class CallbackReceiver:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds before each answer: a slow endpoint
        self.received: list[Call] = []
        self._answers: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                with receiver._lock:
                    status = receiver._answers.pop(0) if receiver._answers else 200
                    receiver.received.append(Call(dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/relais/callbacks"

    def answer_next(self, *statuses: int) -> None:
        """Answer the next POSTs with these statuses, in order (then 200)."""
        with self._lock:
            self._answers.extend(statuses)

    def taken(self) -> list[dict]:
        """The bodies answered with a 2xx, in the order they came."""
        with self._lock:
            return [c.json for c in self.received if 200 <= c.answered < 300]

    def __enter__(self) -> "CallbackReceiver":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
