"""The Debian packages the offline corpus builder uses, and which of them are installed here."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from ..core.errors import SonorantError


@dataclass(frozen=True)
class Package:
    name: str
    purpose: str
    large: bool = False  # recordings for the real corpus (about 1.6 GB together), not needed by the tests


# Exactly what `sonorant data build` reads or runs; keep in step with data/build.py and data/SOURCES.md.
PACKAGES = (
    Package("espeak-ng", "speech: 7 English accents x 10 voice variants"),
    Package("flite", "speech: voices kal16, awb, rms, slt"),
    Package("festival", "speech: the festival engine (text2wave)"),
    Package("festvox-kallpc16k", "speech: festival voice kal_diphone"),
    Package("festvox-kdlpc16k", "speech: festival voice ked_diphone"),
    Package("festvox-us-slt-hts", "speech: festival voice cmu_us_slt_arctic_hts (held out, as flite's slt)"),
    Package("fluidsynth", "music: renders the generated MIDI pieces"),
    Package("timgm6mb-soundfont", "music: a small General MIDI soundfont for fluidsynth"),
    Package("sox", "pseudo-speakers: formant, pitch and tempo shifts of the base voices"),
    Package("fortunes-min", "sentences: the BSD fortune databases (part 1)"),
    Package("fortunes", "sentences: the BSD fortune databases (part 2)"),
    Package("fortunes-de", "sentences in German (--language de)"),
    Package("fortunes-es", "sentences in Spanish (--language es)"),
    Package("hedgewars-data", "real voices (held out), game music and sound effects", large=True),
    Package("wesnoth-1.16-music", "music: orchestral recordings", large=True),
    Package("supertuxkart-data", "music and sound effects", large=True),
    Package("widelands-data", "music and sound effects", large=True),
    Package("hydrogen-drumkits", "sound: drum samples", large=True),
    Package("fluid-soundfont-gm", "music: a fuller General MIDI soundfont (used before timgm6mb)", large=True),
)


@dataclass(frozen=True)
class PackageStatus:
    package: Package
    installed: bool


def package_status() -> list[PackageStatus]:
    if shutil.which("dpkg-query") is None:
        raise SonorantError("dpkg-query not found: the corpus builder needs a Debian-based system")
    out = []
    for package in PACKAGES:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package.name], capture_output=True, text=True)
        out.append(PackageStatus(package, result.returncode == 0 and "install ok installed" in result.stdout))
    return out


def install(names: list[str]) -> None:
    """apt-get install the packages (root only)."""
    if not names:
        return
    if os.geteuid() != 0:
        raise SonorantError(f"installing needs root: sudo apt-get install {' '.join(names)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *names]):
        if subprocess.run(cmd, env=env).returncode != 0:
            raise SonorantError(f"{' '.join(cmd)} failed")
