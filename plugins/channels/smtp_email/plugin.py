"""SMTP e-mail: messages leave through the operator's SMTP relay (text + HTML, attachments).

One SMTP connection carries a whole batch; each message is its own mail transaction with one
recipient, so the relay's answer to each ``RCPT TO`` becomes that message's result. There is
no lookup on SMTP: a message whose outcome is unknown is sent again, and its ``Message-ID``
(``<message id@sender's domain>``, the same on every attempt) lets mail clients and tests
recognise the duplicate.

Attachments (``Outgoing.attachments``) are ``(filename, mime type, data)`` triples: ``data``
is ``bytes`` (or ``str``, sent as UTF-8) and the MIME type is a bare ``type/subtype``, e.g.
``("rendez-vous.ics", "text/calendar", b"BEGIN:VCALENDAR...")``. A ``text/calendar``
attachment carries its ``METHOD`` as a content-type parameter, so mail clients offer to add
the invitation to the calendar.
"""

import ipaddress
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    UNREACHABLE,
    Outgoing,
    Provider,
    ProviderError,
    Result,
    Setting,
    hookimpl,
)

kind = "channel"
name = _l("SMTP e-mail")
description = _l("SMTP e-mail: messages leave through your SMTP relay, in text and HTML.")

SECURITY = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
RECONNECTS = 2  # within one batch, when the relay closes the connection (e.g. 421)
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$)({_LABEL}\.)*{_LABEL}")
_ENHANCED = re.compile(rb"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


class SmtpEmail(Provider):
    """Sends e-mail through SMTP with the standard library, one connection per batch."""

    name, channel = "smtp_email", "email"
    batch_size = 50
    may_repeat = True  # SMTP cannot be asked whether a lost transaction got through

    def try_send(self, batch: list[Outgoing], timeout: float) -> list[Result]:
        host, sender = self.settings.get("host"), self.settings.get("sender")
        if not host or not sender:
            raise ProviderError("smtp_email is not configured: set its host and sender", PERMANENT)
        _name, envelope_sender = parseaddr(sender)
        domain = _ascii(envelope_sender.rpartition("@")[2])
        results: list[Result] = []
        smtp, reconnects = self._connect(timeout), 0
        try:
            for outgoing in batch:
                if smtp is None:  # the relay closed the connection after the previous message
                    if reconnects >= RECONNECTS:
                        results.append(_result(outgoing, TEMPORARY, "connection lost"))
                        continue
                    reconnects += 1
                    try:
                        smtp = self._connect(timeout)
                    except ProviderError as exc:
                        results.append(_result(outgoing, exc.outcome, str(exc)))
                        continue
                results.append(_send_one(smtp, outgoing, sender, envelope_sender, domain))
                if smtp.sock is None:  # closed by smtplib on a 421, or by _send_one
                    smtp = None
        finally:
            if smtp is not None:
                _close(smtp)
        return results

    def _connect(self, timeout: float) -> smtplib.SMTP:
        """An open, greeted, secured and logged-in connection; ProviderError otherwise."""
        security = self.settings.get("security") or "starttls"
        host = self.settings["host"]
        port = self.settings.get("port") or DEFAULT_PORTS[security]
        smtp = None
        try:
            if security == "ssl":
                smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls())
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            smtp.ehlo()
            if security == "starttls":
                smtp.starttls(context=_tls())
                smtp.ehlo()
            if self.settings.get("username"):
                smtp.login(self.settings["username"], self.settings.get("password") or "")
            return smtp
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, no AUTH: a setting is wrong
            _close(smtp)
            raise ProviderError(f"{host}:{port}: {exc}", PERMANENT) from exc
        except smtplib.SMTPResponseException as exc:  # greeting, EHLO, STARTTLS, AUTH refused
            _close(smtp)
            outcome = _by_code(exc.smtp_code)
            raise ProviderError(_reply(exc.smtp_code, exc.smtp_error), outcome) from exc
        except ssl.SSLError as exc:  # an untrusted certificate, or TLS on a plain port
            _close(smtp)
            outcome = TEMPORARY if isinstance(exc, ssl.SSLEOFError) else PERMANENT
            message = f"{host}:{port}: TLS failed ({exc}); check the security setting"
            raise ProviderError(message, outcome) from exc
        except smtplib.SMTPServerDisconnected as exc:
            _close(smtp)
            raise ProviderError(f"{host}:{port}: {exc}", TEMPORARY) from exc
        except smtplib.SMTPException as exc:  # e.g. no authentication method in common
            _close(smtp)
            raise ProviderError(f"{host}:{port}: {exc}", PERMANENT) from exc
        except OSError as exc:  # refused, unreachable, timed out, name unknown
            _close(smtp)
            raise ProviderError(f"{host}:{port}: {type(exc).__name__}: {exc}", TEMPORARY) from exc


def compose(outgoing: Outgoing, sender: str, domain: str) -> EmailMessage:
    """The e-mail for ``outgoing``: text, HTML alternative, attachments, our Message-ID.

    :raises ValueError: when an attachment is not a ``(filename, mime type, data)`` triple.
    """
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = outgoing.to
    mail["Subject"] = outgoing.subject or ""
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(outgoing, domain)
    mail.set_content(outgoing.text)
    if outgoing.html:
        mail.add_alternative(outgoing.html, subtype="html")
    for attachment in outgoing.attachments:
        filename, mime_type, data = _attachment(attachment)
        maintype, subtype = mime_type.split("/")
        params = {}
        if mime_type == "text/calendar":
            method = re.search(rb"^METHOD:([A-Z-]+)\r?$", data, re.MULTILINE)
            if method:
                params["method"] = method.group(1).decode()
        mail.add_attachment(data, maintype, subtype, filename=filename, params=params)
    return mail


def message_id(outgoing: Outgoing, domain: str) -> str:
    """Our Message-ID: the same on every attempt of a message, so duplicates are countable."""
    return f"<{outgoing.message_id}@{domain}>"


def _send_one(
    smtp: smtplib.SMTP, outgoing: Outgoing, sender: str, envelope_sender: str, domain: str
) -> Result:
    try:
        mail = compose(outgoing, sender, domain)
    except ValueError as exc:
        return _result(outgoing, PERMANENT, str(exc))
    try:
        refused = smtp.send_message(mail, from_addr=envelope_sender, to_addrs=[outgoing.to])
    except smtplib.SMTPRecipientsRefused as exc:  # RCPT TO refused: about this address
        code, reply = next(iter(exc.recipients.values()))
        return _result(outgoing, _by_rcpt_reply(code, reply), _reply(code, reply))
    except smtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused
        return _result(outgoing, _by_code(exc.smtp_code), _reply(exc.smtp_code, exc.smtp_error))
    except smtplib.SMTPNotSupportedError as exc:  # e.g. an international address, no SMTPUTF8
        return _result(outgoing, PERMANENT, str(exc))
    except OSError as exc:  # disconnected, timed out: this connection is done
        smtp.close()
        # The relay may or may not have taken it: sent again later under the same Message-ID.
        return _result(outgoing, TEMPORARY, f"connection lost: {type(exc).__name__}: {exc}")
    if refused:
        code, reply = next(iter(refused.values()))
        return _result(outgoing, _by_rcpt_reply(code, reply), _reply(code, reply))
    return Result(outgoing.message_id, ACCEPTED, provider_ref=mail["Message-ID"])


def _attachment(item) -> tuple[str, str, bytes]:
    try:
        filename, mime_type, data = item
    except (TypeError, ValueError):
        raise ValueError("an attachment is not a (filename, mime type, data) triple") from None
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(filename, str) or not isinstance(data, bytes | bytearray):
        raise ValueError(f"attachment {filename!r}: a file name and bytes are needed")
    if not re.fullmatch(r"[\w.+-]+/[\w.+-]+", str(mime_type)):
        raise ValueError(f"attachment {filename!r}: {mime_type!r} is not a MIME type")
    return filename, mime_type.lower(), bytes(data)


def _by_code(code: int) -> str:
    """4xx is worth retrying; 5xx will not change (bad credentials, refused content)."""
    return PERMANENT if 500 <= code < 600 else TEMPORARY


def _by_rcpt_reply(code: int, reply: bytes) -> str:
    """A refused recipient: 4xx temporary; 5xx about the address (550, 551, 553, or an
    enhanced status 5.1.x / 5.2.1) unreachable; other 5xx, e.g. 5.7.1 relaying denied,
    are the relay's refusal: permanent, so another provider is tried."""
    if not 500 <= code < 600:
        return TEMPORARY
    enhanced = _ENHANCED.match(reply or b"")
    if enhanced:
        subject, detail = enhanced.group(2), enhanced.group(3)
        return UNREACHABLE if subject == b"1" or (subject, detail) == (b"2", b"1") else PERMANENT
    return UNREACHABLE if code in (550, 551, 553) else PERMANENT


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {text}"[:200]


def _result(outgoing: Outgoing, outcome: str, error: str) -> Result:
    return Result(outgoing.message_id, outcome, error=error[:200])


def _ascii(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain.lower()


def _tls() -> ssl.SSLContext:
    """Verify the relay's certificate against the system's authorities (``SSL_CERT_FILE``)."""
    return ssl.create_default_context()


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


# --- settings ---------------------------------------------------------------------------------


def parse_host(text: str) -> str:
    """A host name or IP address, without scheme or port."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(text.lower()):
        raise ValueError(_("Enter a host name such as smtp.example.org, without scheme or port."))
    return text.lower()


def parse_port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(_("Enter a port number between 1 and 65535, such as 587."))
    return int(text)


def parse_security(text: str) -> str:
    if text.lower() not in SECURITY:
        raise ValueError(_("Choose starttls, ssl or none."))
    return text.lower()


def parse_sender(text: str) -> str:
    """``name@domain`` or ``Display name <name@domain>``, normalised."""
    name, address = parseaddr(text)
    try:
        address = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError(
            _("Enter an e-mail address, such as Clinic <rendez-vous@example.org>.")
        ) from None
    return formataddr((name, address)) if name else address


@hookimpl
def relais_register_channels():
    return [SmtpEmail]


@hookimpl
def relais_plugin_settings():
    return [
        Setting("host", _l("SMTP host"), parse=parse_host, help=_l("e.g. smtp.example.org")),
        Setting(
            "port",
            _l("SMTP port"),
            parse=parse_port,
            help=_l("Empty: 587 with starttls, 465 with ssl, 25 with none."),
        ),
        Setting(
            "security",
            _l("Connection security"),
            default="starttls",
            parse=parse_security,
            help=_l("starttls, ssl, or none (only for a relay on your own network)."),
        ),
        Setting("username", _l("SMTP user name"), help=_l("Empty: no login.")),
        Setting("password", _l("SMTP password"), secret=True),
        Setting(
            "sender",
            _l("Sender"),
            parse=parse_sender,
            help=_l("The From address, e.g. Clinic <rendez-vous@example.org>."),
        ),
    ]
