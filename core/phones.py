"""Phone numbers as people type them: stored in E.164, searched however typed
(``06 12 34 56 78``, ``+33 6 12…``, ``0033 6…``); :func:`core.i18n.format_phone` shows them."""

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
