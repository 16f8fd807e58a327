"""Speak SSML read on standard input, write a WAV to standard output: espeak-ng's library.

``python -m plugins.channels.voice_twilio.espeak VOICE``. The library and its voices come
from the ``espeakng-loader`` wheel, which pip installs with Relais: no system package is
needed. It runs in a process of its own because the library keeps global state and is not
thread-safe, and so that the caller can bound its time.
"""

import ctypes
import io
import sys
import wave

import espeakng_loader

SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: samples are handed to the callback
SSML, UTF8 = 0x10, 1  # espeakSSML | espeakCHARS_UTF8
CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def speak(ssml: str, voice: str) -> bytes:
    """The WAV (16-bit mono PCM) of ``ssml`` spoken with ``voice``."""
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = lib.espeak_Initialize(SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        raise RuntimeError("espeak-ng could not start")
    samples = bytearray()

    @CALLBACK
    def collect(wav, count, _events):
        if wav and count > 0:
            samples.extend(ctypes.string_at(wav, count * 2))
        return 0  # go on

    lib.espeak_SetSynthCallback(collect)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice}")
    text = ssml.encode()
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    if lib.espeak_Synth(text, len(text) + 1, 0, 1, 0, SSML | UTF8, None, None) != 0:
        raise RuntimeError("espeak-ng could not speak the text")
    lib.espeak_Synchronize()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(samples))
    return out.getvalue()


if __name__ == "__main__":
    sys.stdout.buffer.write(speak(sys.stdin.read(), sys.argv[1]))
