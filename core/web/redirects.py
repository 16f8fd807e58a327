"""Where a ``next`` parameter may send a browser: a path of this host, nothing else.

Browsers forgive a lot in a ``Location``: they drop tabs and newlines (``/\\t/evil.example``
becomes ``//evil.example``, another host), read a backslash as a slash (``/\\evil.example``),
and follow scheme-relative addresses. Rather than list the tricks, a target is kept only
when it is plainly a path: one leading slash, no second slash or backslash after it, no
control character or backslash anywhere, no scheme or host, and the same once
percent-decoded (so an encoded form cannot become one of these further on).
"""

from urllib.parse import unquote, urlsplit


def same_host_path(target: str | None, fallback: str) -> str:
    """``target`` when it is a path of this host, else ``fallback``.

    Every view that honours a ``next`` parameter goes through this function.
    """
    if not target or not isinstance(target, str):
        return fallback
    return target if _plain_path(target) and _plain_path(unquote(target)) else fallback


def _plain_path(value: str) -> bool:
    if not value.startswith("/") or value[1:2] in ("/", "\\"):
        return False
    if "\\" in value or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc
