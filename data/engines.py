"""Offline speech synthesis engines from Debian packages (espeak-ng, flite, festival), used to build corpora."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .timings import WordTime, espeak_render, festival_script, festival_words, flite_words

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-us-nyc")
# Other languages: espeak-ng only (flite speaks English).
ESPEAK_OTHER = {"de": ("de",), "es": ("es", "es-419")}
ESPEAK_VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f4", "klatt", "croak", "whisperf")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = Path("/usr/share/festival/voices")
FESTIVAL_ENGLISH = ("english", "us")  # voice folders by language; festvox-kallpc16k, -kdlpc16k, -us-slt-hts ...
ENGINES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}  # engine -> program


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng", "flite" or "festival"
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
    if shutil.which("festival") and language == "en":
        voices += [Voice("festival", d.name) for folder in FESTIVAL_ENGLISH
                   for d in sorted((FESTIVAL_VOICES / folder).glob("*")) if d.is_dir()]
    return voices


def missing_engines() -> list[str]:
    """Engines whose program is not installed."""
    return [engine for engine, program in ENGINES.items() if shutil.which(program) is None]


def synthesize(voice: Voice, text: str, out: Path, rate_wpm: int = 165, pitch: int = 50) -> list[WordTime] | None:
    """Speak `text` with `voice` into the wav file `out` (the engine's native sample rate); returns the
    engine's own word timings (None where it gives none for this sentence)."""
    stretch = 165 / rate_wpm
    if voice.engine == "espeak-ng":
        return espeak_render(voice.name, text, out, rate_wpm, pitch)
    if voice.engine == "flite":
        # flite prints either the words or the timed phones in one run: the second run renders nothing.
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch:.3f}", "-t", text]
        phones = subprocess.run([*cmd[:-2], "-psdur", *cmd[-2:], "-o", str(out)], check=True, capture_output=True,
                                text=True, timeout=120).stdout
        words = subprocess.run([*cmd[:-2], "-pr", "Word", *cmd[-2:], "-o", "none"], check=True, capture_output=True,
                               text=True, timeout=120).stdout
        return flite_words(words + "\n" + phones)
    if voice.engine == "festival":
        # Diphone voices follow the duration stretch (HTS voices keep their own timing); pitch stays the
        # voice's own.
        script = festival_script(voice.name, text, out, stretch)
        result = subprocess.run(["festival", "--pipe"], input=script, text=True, check=True, capture_output=True,
                                timeout=120)
        if not out.is_file():
            raise subprocess.CalledProcessError(1, ["festival"], result.stdout, result.stderr)
        return festival_words(result.stdout)
    raise ValueError(f"unknown engine {voice.engine!r}")
