"""The staff's preview of a call: its script rendered to a WAV file by espeak-ng.

espeak-ng (the Debian package ``espeak-ng``) is a small offline synthesiser: what the patient
hears from Twilio's voices sounds better, but says the same words with the same pauses, since
both are rendered from :func:`speech.script`. The text goes to espeak-ng on its standard
input, never on its command line, where any user of the machine could read it (``ps``).
"""

import io
import shutil
import subprocess
import wave
from xml.etree import ElementTree as ET

from plugins.channels.voice_twilio.speech import Pause, Say

TIMEOUT = 10.0  # seconds: a preview of the longest message takes about one
# espeak-ng's voice for each speech language.
VOICES = {"fr": "fr", "de": "de", "it": "it", "nl": "nl", "en": "en-gb"}


class PreviewError(RuntimeError):
    """espeak-ng is missing, failed, or took too long."""


def render_wav(steps: list[Say | Pause], language: str, timeout: float = TIMEOUT) -> bytes:
    """The WAV (16-bit mono PCM) of a call's script, spoken by espeak-ng.

    :raises PreviewError: when espeak-ng is not installed, fails or exceeds ``timeout``.
    """
    program = shutil.which("espeak-ng")
    if program is None:
        raise PreviewError("espeak-ng is not installed (Debian package espeak-ng)")
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program; the text goes on stdin
            [program, "-m", "-v", VOICES.get(language, "en-gb"), "--stdout"],
            input=ssml(steps).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PreviewError(f"espeak-ng took over {timeout:g} s") from exc
    if done.returncode != 0 or not done.stdout.startswith(b"RIFF"):
        raise PreviewError(f"espeak-ng failed (exit code {done.returncode})")
    return _with_sizes(done.stdout)


def ssml(steps: list[Say | Pause]) -> str:
    """The script as SSML, which espeak-ng reads with ``-m``: words, and pauses as breaks."""
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


def _with_sizes(streamed: bytes) -> bytes:
    """A WAV with its real sizes: writing to a pipe, espeak-ng cannot go back to fill them in
    its header (it leaves 0x7ffff0xx there), and players would show a duration of hours."""
    with wave.open(io.BytesIO(streamed)) as source:
        params = source.getparams()
    frames = streamed[streamed.index(b"data", 12) + 8 :]
    frames = frames[: len(frames) - len(frames) % (params.sampwidth * params.nchannels)]
    out = io.BytesIO()
    with wave.open(out, "wb") as fixed:
        fixed.setnchannels(params.nchannels)
        fixed.setsampwidth(params.sampwidth)
        fixed.setframerate(params.framerate)
        fixed.writeframes(frames)
    return out.getvalue()
