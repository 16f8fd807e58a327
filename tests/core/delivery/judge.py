"""A test regulation plugin: its verdict depends on words in the message's text."""

from datetime import timedelta

from core import hookimpl
from core.db import utcnow
from core.regulation import Verdict

kind = "regulation"


@hookimpl
def relais_judge_message(message):
    text = message.content["text"]
    if "promo" in text:
        return Verdict("deny", reason="no consent to promotional messages")
    if "night" in text:
        return Verdict("defer", until=utcnow() + timedelta(hours=8), reason="quiet hours")
    if "campaign" in text:
        return Verdict("amend", text=f"{text} STOP 36180", reason="STOP mention")
    return None
