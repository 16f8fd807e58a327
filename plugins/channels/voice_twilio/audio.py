"""The staff's preview of a call: its script rendered to a WAV file by espeak-ng.

espeak-ng is a small offline synthesiser, installed by pip with Relais (the library and its
voices ship in the ``espeakng-loader`` wheel; :mod:`espeak` drives it): what the patient
hears from Twilio's voices sounds better, but says the same words with the same pauses, since
both are rendered from :func:`speech.script`. It runs in a process of its own, bounded in
time; the text goes on its standard input, never on its command line, where any user of the
machine could read it (``ps``).
"""

import subprocess
import sys
from xml.etree import ElementTree as ET

from plugins.channels.voice_twilio.speech import Pause, Say

TIMEOUT = 10.0  # seconds: a preview of the longest message takes about one
# espeak-ng's voice for each speech language.
VOICES = {"fr": "fr", "de": "de", "it": "it", "nl": "nl", "en": "en-gb"}


class PreviewError(RuntimeError):
    """espeak-ng failed or took too long."""


def render_wav(steps: list[Say | Pause], language: str, timeout: float = TIMEOUT) -> bytes:
    """The WAV (16-bit mono PCM) of a call's script, spoken by espeak-ng.

    :raises PreviewError: when espeak-ng fails or exceeds ``timeout``.
    """
    program = [sys.executable, "-m", "plugins.channels.voice_twilio.espeak"]
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program; the text goes on stdin
            [*program, VOICES.get(language, "en-gb")],
            input=ssml(steps).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PreviewError(f"espeak-ng took over {timeout:g} s") from exc
    if done.returncode != 0 or not done.stdout.startswith(b"RIFF"):
        raise PreviewError(f"espeak-ng failed (exit code {done.returncode})")
    return done.stdout


def ssml(steps: list[Say | Pause]) -> str:
    """The script as SSML, which espeak-ng reads: words, and pauses as breaks."""
    speak = ET.Element("speak")
    last = None
    for step in steps:
        if isinstance(step, Pause):
            last = ET.SubElement(speak, "break", time=f"{step.seconds}s")
        elif last is None:
            speak.text = (speak.text or "") + step.text + " "
        else:
            last.tail = (last.tail or "") + step.text + " "
    return ET.tostring(speak, encoding="unicode")
