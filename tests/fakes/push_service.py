"""FakePushService: a Web Push service on 127.0.0.1, checking what real ones check.

What it plays (RFC 8030, 8291, 8292):

- Subscriptions: :meth:`FakePushService.device` makes what a browser's
  ``pushManager.subscribe()`` gives, with its own keys (a P-256 key pair and a 16-byte auth
  secret, made with ``cryptography``): endpoint ``http://127.0.0.1:<port>/push/<id>``, and
  ``keys.p256dh``/``keys.auth`` in base64url. :meth:`Device.info` is the subscription JSON.
- ``POST /push/<id>``: the ``Authorization: vapid t=<JWT>, k=<public key>`` header must carry
  an ES256 JWT whose signature checks with ``k`` (verified here with ``cryptography``, not with
  the sender's library), ``aud`` the endpoint's origin, ``exp`` in the future and at most 24
  hours ahead, and a ``sub``; else 401 (403 when ``k`` is not the key the device subscribed
  with). ``TTL`` is required and ``Content-Encoding`` must be ``aes128gcm`` (else 400); a body
  over 4096 bytes is a 413. The body is decrypted with ``http_ece`` and the device's private
  key and auth secret: :attr:`received` holds what the phone would get. Answers 201 with a
  ``Location``.
- An unknown endpoint is a 404.

What a test controls: :meth:`fail_next` (answer the next call, of any device or of one, with a
status: 410/404 gone, 429/500 temporary, 400/403 permanent), :meth:`gone` (a device
unsubscribed: 410 from now on), :meth:`hang_next` (answer the next call only after some
seconds: the client times out).
"""

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_BODY = 4096
MAX_EXP = 24 * 3600


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's subscription: what the push service knows, and the keys only it has."""

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    server_key: str | None = None  # the applicationServerKey it subscribed with, if any

    @property
    def p256dh(self) -> str:
        return b64(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def info(self) -> dict:
        """The subscription as ``PushSubscription.toJSON()`` gives it."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64(self.auth)},
        }


@dataclass
class Received:
    """A message the push service took for a device: decrypted, as the phone gets it."""

    device: str
    payload: dict
    headers: dict[str, str]
    claims: dict


@dataclass
class _Script:
    fail: list[tuple[str | None, int]] = field(default_factory=list)  # (device or any, status)
    hang: list[float] = field(default_factory=list)


class FakePushService:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.gone_devices: set[str] = set()
        self.received: list[Received] = []
        self.answers: list[tuple[str, int]] = []  # (device id, HTTP status) per call
        self._script = _Script()
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakePushService":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # --- what a test tells it ----------------------------------------------------------------

    def device(self, server_key: str | None = None) -> Device:
        """A new subscription, as a browser would make it (optionally bound to a VAPID key)."""
        device_id = uuid.uuid4().hex
        device = Device(
            id=device_id,
            endpoint=f"{self.origin}/push/{device_id}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
            server_key=server_key,
        )
        with self.lock:
            self.devices[device_id] = device
        return device

    def fail_next(self, status: int, device: Device | None = None, count: int = 1) -> None:
        with self.lock:
            self._script.fail.extend([(device.id if device else None, status)] * count)

    def gone(self, device: Device) -> None:
        """The browser unsubscribed: 410 Gone from now on."""
        with self.lock:
            self.gone_devices.add(device.id)

    def hang_next(self, seconds: float) -> None:
        with self.lock:
            self._script.hang.append(seconds)

    # --- what a test reads -------------------------------------------------------------------

    def payloads(self, device: Device | None = None) -> list[dict]:
        with self.lock:
            return [r.payload for r in self.received if device is None or r.device == device.id]

    def references(self) -> list[str]:
        """The message ids of every payload taken, once per time it was taken."""
        return [p.get("message_id") for p in self.payloads()]

    # --- the protocol --------------------------------------------------------------------------

    def _take(self, device_id: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        """(status, extra headers) for a push to ``device_id``."""
        with self.lock:
            device = self.devices.get(device_id)
            scripted = next(
                (i for i, (who, _) in enumerate(self._script.fail) if who in (None, device_id)),
                None,
            )
            failing = self._script.fail.pop(scripted)[1] if scripted is not None else None
        if device is None or device_id in self.gone_devices:
            return (404 if device is None else 410), {}
        if failing:
            return failing, {}
        claims, key = _vapid(headers.get("authorization", ""), self.origin)
        if claims is None:
            return 401, {}
        if device.server_key and key != device.server_key:
            return 403, {}  # not the key the browser subscribed with
        if not headers.get("ttl", "").isdigit():
            return 400, {}
        if headers.get("content-encoding", "").lower() != "aes128gcm":
            return 400, {}
        if len(body) > MAX_BODY:
            return 413, {}
        try:
            plain = http_ece.decrypt(
                body, private_key=device.private_key, auth_secret=device.auth, version="aes128gcm"
            )
            payload = json.loads(plain)
        except Exception:  # noqa: BLE001 - whatever does not decrypt is a bad request
            return 400, {}
        with self.lock:
            self.received.append(Received(device_id, payload, dict(headers), claims))
        return 201, {"Location": f"{self.origin}/message/{uuid.uuid4().hex}"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake.lock:
                    hang = fake._script.hang.pop(0) if fake._script.hang else 0.0
                time.sleep(hang)  # answered too late: the client has given up
                path = self.path.split("?", 1)[0]
                if path.startswith("/push/"):
                    device_id = path.removeprefix("/push/")
                    status, extra = fake._take(device_id, headers, body)
                else:
                    device_id, status, extra = "", 404, {}
                with fake.lock:
                    fake.answers.append((device_id, status))
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        return Handler


def _vapid(authorization: str, origin: str) -> tuple[dict | None, str | None]:
    """The claims of a valid RFC 8292 ``vapid t=..., k=...`` header, and its key; (None,
    None) when anything does not check out."""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "vapid":
        return None, None
    params = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        params[name.strip()] = value.strip()
    token, key = params.get("t", ""), params.get("k", "")
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64(header_b64))
        claims = json.loads(unb64(claims_b64))
        signature = unb64(signature_b64)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(key))
        if header.get("alg") != "ES256" or len(signature) != 64:
            return None, None
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        public.verify(
            encode_dss_signature(r, s),
            f"{header_b64}.{claims_b64}".encode(),
            ec.ECDSA(hashes.SHA256()),
        )
    except (ValueError, TypeError, InvalidSignature):
        return None, None
    now = time.time()
    exp = claims.get("exp")
    if claims.get("aud") != origin or not isinstance(exp, int) or not now < exp <= now + MAX_EXP:
        return None, None
    if not str(claims.get("sub") or "").startswith(("mailto:", "https:")):
        return None, None
    return claims, key
