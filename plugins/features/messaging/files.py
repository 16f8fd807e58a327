"""Attachments patients send: a PDF, a JPEG or a PNG, known by its first bytes (a renamed
program is refused whatever its name says), within the clinic's size limit."""

from flask_babel import gettext as _

from core.plugin_api import ValidationError
from plugins.features.messaging.models import MAX_FILENAME

# The signature each accepted type starts with, and the type it is served as.
SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
MAX_FILES = 3


def sniff(data: bytes) -> str | None:
    """The MIME type of ``data`` by its content, or None when it is none of those accepted."""
    for signature, mime_type in SIGNATURES:
        if data.startswith(signature):
            return mime_type
    return None


def check(files: list[tuple[str, bytes]], max_bytes: int) -> list[tuple[str, str, bytes]]:
    """``(filename, mime type, data)`` of each file sent, empty fields left out.

    :raises ValidationError: on ``attachments``, naming the file that is too large, empty or
        not a PDF, JPEG or PNG, or when there are too many.
    """
    found = []
    for filename, data in files:
        if not filename and not data:
            continue  # the form's empty file field
        name = (filename or "attachment").replace("/", "_").replace("\\", "_")[-MAX_FILENAME:]
        if not data:
            raise ValidationError(_("%(name)s is empty.", name=name), "attachments")
        if len(data) > max_bytes:
            raise ValidationError(
                _(
                    "%(name)s is too large: at most %(mb)s MB per file.",
                    name=name,
                    mb=f"{max_bytes / 1_000_000:g}",
                ),
                "attachments",
            )
        mime_type = sniff(data)
        if mime_type is None:
            raise ValidationError(
                _("%(name)s is not a PDF, JPEG or PNG file.", name=name), "attachments"
            )
        found.append((name, mime_type, data))
    if len(found) > MAX_FILES:
        raise ValidationError(_("At most %(n)d files per message.", n=MAX_FILES), "attachments")
    return found
