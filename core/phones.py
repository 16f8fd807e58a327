"""Phone numbers as people type them: stored in E.164, searched however typed
(``06 12 34 56 78``, ``+33 6 12…``, ``0033 6…``); :func:`core.i18n.format_phone` shows them."""

import functools

import phonenumbers

# What a phone number, whole or in part, is typed with; anything else is not one.
TYPED = frozenset("+0123456789 .-/()")


def search_forms(text: str, region: str) -> tuple[list[str], list[str]]:
    """What a typed phone number, whole or in part, may be inside a stored E.164 number:
    the starts it may have (``+33612``) and the digits it may contain (``612``).

    :param region: the clinic's country (``"FR"``): a national number is read as one of it.
    :return: ``(prefixes, fragments)``, both empty when ``text`` is no phone number.
    """
    typed = text.strip()
    digits = "".join(c for c in typed if c.isdigit())
    if len(digits) < 2 or not set(typed) <= TYPED:
        return [], []
    if typed.startswith("+"):
        return [f"+{digits}"], []
    if digits.startswith("00"):
        return [f"+{digits[2:]}"], []
    prefixes = set()
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    code = phonenumbers.country_code_for_region(region)
    national_prefix = metadata.national_prefix if metadata else None
    if code and national_prefix and digits.startswith(national_prefix):
        prefixes.add(f"+{code}{digits[len(national_prefix) :]}")
    try:  # a whole national number, as the country's own rules read it (Italy keeps its 0)
        number = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        prefixes.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(prefixes), [digits]


MOBILE, LANDLINE = "mobile", "landline"  # what a patient's phone line is (Patient.phone_line)


@functools.lru_cache(maxsize=4096)
def line_type(number: str | None) -> str | None:
    """Whether ``number`` (E.164) takes text messages (``"mobile"``) or not (``"landline"``:
    fixed, premium, toll free...); None without a number or for one that does not parse.
    Remembered per process: parsing a number costs more than writing a message."""
    if not number:
        return None
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return None
    texts = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    return MOBILE if kind in texts else LANDLINE


# Numbers that can never be a subscriber's (outside each country's numbering plan, so no
# live number can ever collide with them), kept for integrators' tests: a message to one
# never leaves, whatever the key; the simulator answers as the last digit says (docs/api.md).
TEST_OUTCOMES = {"1": "unreachable", "2": "permanent", "3": "temporary"}
TEST_PREFIXES = (
    "+3370000000",  # France: +33 7 00 00 00 0X (the 0700 range is not allocated)
    "+4919900000",  # Germany: +49 199 0000 000X (0199 is internal to the networks)
    "+3930000000",  # Italy: +39 300 000 000X (the 300 range is not allocated)
    "+3160000000",  # the Netherlands: +31 6 00 00 00 0X (06-00 is not allocated)
)
TEST_NUMBERS = {
    f"{prefix}{digit}": outcome
    for prefix in TEST_PREFIXES
    for digit, outcome in {"0": "delivered", **TEST_OUTCOMES}.items()
}


def is_test_number(number: str | None) -> bool:
    """Whether ``number`` (E.164) is one of the documented test numbers (:data:`TEST_NUMBERS`)."""
    return number in TEST_NUMBERS
