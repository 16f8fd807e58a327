"""How many SMS a text takes: GSM-7 or UCS-2, and the segments of a concatenated message.

A text is sent in GSM-7 (3GPP TS 23.038, "GSM 03.38") when every character is in the basic
table or its extension table; an extension character is sent as ESC + character and so takes
two septets. Any other character makes the whole text UCS-2 (in practice UTF-16: a character
beyond the BMP, such as most emoji, takes two code units). One SMS carries 160 septets or 70
code units; a longer text is split into segments of 153 septets or 67 code units (the rest
of each segment holds the concatenation header), and a segment never ends in the middle of
an escape sequence or of a surrogate pair. This is how operators and providers bill them.

No library was used: the PyPI packages that count segments are unmaintained (smsutil, last
release 2020) or only encode (gsm0338); the tables below are the standard's.
"""

GSM7, UCS2 = "GSM-7", "UCS-2"

# The basic character set, in code order (0x1B, the escape to the extension table, left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
# The extension table: each of these costs two septets (ESC + its code).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}  # one SMS, one segment of a long message


def encoding(text: str) -> str:
    """``"GSM-7"`` if every character of ``text`` has a GSM 03.38 code, else ``"UCS-2"``."""
    return GSM7 if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else UCS2


def segments(text: str) -> tuple[str, int]:
    """The encoding of ``text`` and how many SMS segments it takes (an empty text: one)."""
    name = encoding(text)
    if name == GSM7:
        units = [2 if c in GSM7_EXTENSION else 1 for c in text]
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
    single, part = _LIMITS[name]
    if sum(units) <= single:
        return name, 1
    count, used = 1, 0
    for size in units:  # fill each segment; a two-unit character never straddles two
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return name, count


__all__ = ["GSM7", "GSM7_BASIC", "GSM7_EXTENSION", "UCS2", "encoding", "segments"]
