"""A real SMTP server on loopback (aiosmtpd) that records what it receives and refuses on demand.

It answers as a relay would: ``refuse(address, "550 5.1.1 ...")`` scripts its reply to
``RCPT TO`` for an address, ``close_after`` answers 421 to the next ``MAIL FROM`` of a
connection that has carried that many messages, and AUTH succeeds only for ``users``.
``connections`` counts the connections that said EHLO; ``messages`` are the parsed e-mails.
"""

import asyncio
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SENDER = "Clinique Demo <rendez-vous@clinique.example>"
USER, PASSWORD = "relais", "s3cret relay password"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpServer:
    """``with SmtpServer() as server:`` a relay on 127.0.0.1, plain, STARTTLS or SSL."""

    def __init__(self, security: str = "none", certificate: tuple[Path, Path] | None = None):
        self.security = security
        self.certificate = certificate
        self.received: list[Received] = []
        self.connections = 0
        self.users = {USER: PASSWORD}
        self.close_after: int | None = None
        self._replies: dict[str, list[str]] = {}
        self.stall = 0.0  # seconds the next RCPT TO waits before its answer
        self.port = free_port()
        self._controller: Controller | None = None

    # --- what tests script and read ---------------------------------------------------------

    def refuse(self, address: str, reply: str, times: int = 10**6) -> None:
        """Answer ``reply`` to ``RCPT TO:<address>``, the next ``times`` times."""
        self._replies[address.lower()] = [reply] * times

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def settings(self, **changes: str) -> dict[str, str]:
        """The operator's form for the smtp_email plugin, pointing at this server."""
        return {
            "host": "127.0.0.1",
            "port": str(self.port),
            "security": self.security,
            "username": USER,
            "password": PASSWORD,
            "sender": SENDER,
            **changes,
        }

    # --- aiosmtpd handler hooks ---------------------------------------------------------------

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # ``server`` is the protocol of one connection; ``session`` is renewed by STARTTLS.
        if not hasattr(server, "sent_here"):
            server.sent_here = 0
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.close_after is not None and server.sent_here >= self.close_after:
            return "421 4.7.0 Too many messages on this connection, come back"
        envelope.mail_from, envelope.mail_options = address, list(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.stall:
            stall, self.stall = self.stall, 0.0
            await asyncio.sleep(stall)
        scripted = self._replies.get(address.lower())
        if scripted:
            return scripted.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        server.sent_here += 1
        return "250 2.0.0 Ok: queued"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    # --- life -------------------------------------------------------------------------------

    def __enter__(self) -> "SmtpServer":
        context = None
        if self.security != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.certificate)
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=context if self.security == "ssl" else None,
            tls_context=context if self.security == "starttls" else None,
            authenticator=self.authenticate,
            auth_require_tls=False,
            decode_data=False,
        )
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, in ``folder``; trust it with SSL_CERT_FILE."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
