"""SMS segment counting: GSM-7 (basic and extension tables) or UCS-2, single or concatenated."""

import pytest

from core.delivery.sms import GSM7, UCS2, segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (GSM7, 1)),
        ("a" * 160, (GSM7, 1)),
        ("a" * 161, (GSM7, 2)),  # concatenated: 153 septets a segment
        ("a" * 306, (GSM7, 2)),
        ("a" * 307, (GSM7, 3)),
        ("Rendez-vous à 9h, Dr Müller. Répondez OUI @ £5", (GSM7, 1)),  # all in the basic table
        ("€" * 80, (GSM7, 1)),  # extension characters take two septets
        ("€" * 81, (GSM7, 2)),
        ("a" * 152 + "€" + "a" * 10, (GSM7, 2)),  # the escape pair is not split
        ("a" * 152 + "€" + "a" * 152, (GSM7, 3)),
        ("Leçon", (UCS2, 1)),  # ç (lower case) is not in GSM 03.38: the whole text is UCS-2
        ("ê" * 70, (UCS2, 1)),
        ("ê" * 71, (UCS2, 2)),  # 67 code units a segment
        ("ê" * 134, (UCS2, 2)),
        ("ê" * 135, (UCS2, 3)),
        ("😀" * 35, (UCS2, 1)),  # beyond the BMP: two code units each
        ("😀" * 36, (UCS2, 2)),
        ("a" * 66 + "😀" + "a" * 5, (UCS2, 2)),  # a surrogate pair is not split
    ],
)
def test_segments(text, expected):
    assert segments(text) == expected
