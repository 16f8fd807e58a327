"""A second test regulation plugin, to see verdicts compose with tests.core.delivery.judge."""

from core import hookimpl
from core.regulation import Verdict

kind = "regulation"


@hookimpl
def relais_judge_message(message):
    text = message.content["text"]
    if "campaign" in text:
        return Verdict("amend", text=text.replace("campaign", "prevention campaign"), rule="words")
    return None
