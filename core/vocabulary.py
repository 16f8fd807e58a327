"""The closed lists every part of Relais shares, each defined once: channels, purposes (with
the queue each one's messages wait in) and languages.

A new channel kind, purpose or language is one edit here; pages, validation, queues and the
worker read these names.
"""

from dataclasses import dataclass

# The kinds of channel a provider can carry, in the order pages list them.
CHANNELS = ("sms", "email", "push", "voice")
# Channels that reach a patient at their phone number.
PHONE_CHANNELS = ("sms", "voice")

# A patient's sex as FHIR's administrative gender (``Patient.gender``), in this order on pages.
SEXES = ("female", "male", "other", "unknown")

# The worker's queues, in strict priority order: it always takes from the first non-empty one.
QUEUES = ("otp", "transactional", "reminders", "bulk")


@dataclass(frozen=True)
class Purpose:
    """Why a message is sent: it decides its queue and whether consent is needed."""

    name: str
    queue: str
    # Patients need no consent for these (codes, replies, reminders of their own bookings).
    transactional: bool


PURPOSES = {
    p.name: p
    for p in (
        Purpose("otp", "otp", transactional=True),
        Purpose("transactional", "transactional", transactional=True),
        Purpose("reminder", "reminders", transactional=True),
        Purpose("messaging", "transactional", transactional=True),
        Purpose("campaign", "bulk", transactional=False),
    )
}

# Every language pages, e-mails, SMS and spoken texts are written in (ISO 639-1).
LANGUAGES = ("fr", "de", "it", "nl", "en")
