"""Offline speech synthesis engines from Debian packages (espeak-ng, flite), used to build corpora."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-us-nyc")
# Other languages: espeak-ng only (flite speaks English).
ESPEAK_OTHER = {"de": ("de",), "es": ("es", "es-419")}
ESPEAK_VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f4", "klatt", "croak", "whisperf")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng" or "flite"
    name: str  # engine-specific voice name, e.g. "en-gb+f2" or "slt"
    language: str = "en"

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


def available_voices(language: str = "en") -> list[Voice]:
    """Every voice of the engines installed on this machine that speaks `language`."""
    voices: list[Voice] = []
    if shutil.which("espeak-ng"):
        accents = ESPEAK_ACCENTS if language == "en" else ESPEAK_OTHER.get(language, ())
        voices += [Voice("espeak-ng", f"{accent}+{variant}", language)
                   for accent in accents for variant in ESPEAK_VARIANTS]
    if shutil.which("flite") and language == "en":
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        voices += [Voice("flite", v) for v in FLITE_VOICES if v in listed.split()]
    return voices


def synthesize(voice: Voice, text: str, out: Path, rate_wpm: int = 165, pitch: int = 50) -> None:
    """Speak `text` with `voice` into the wav file `out` (the engine's native sample rate)."""
    if voice.engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(rate_wpm), "-p", str(pitch), "-w", str(out), "--", text]
    elif voice.engine == "flite":
        stretch = f"{165 / rate_wpm:.3f}"
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch}", "-t", text, "-o", str(out)]
    else:
        raise ValueError(f"unknown engine {voice.engine!r}")
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
