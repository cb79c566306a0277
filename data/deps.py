"""The Debian packages the offline corpus builder uses, and which of them are installed here."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from ..codec.errors import SonorantError


@dataclass(frozen=True)
class Package:
    name: str
    purpose: str


# Exactly what `sonorant data build` reads or runs; keep in step with data/build.py and data/SOURCES.md.
PACKAGES = (
    Package("espeak-ng", "speech: 7 English accents x 10 voice variants"),
    Package("flite", "speech: voices kal16, awb, rms, slt"),
    Package("sox", "pseudo-speakers: formant, pitch and tempo shifts of the base voices"),
    Package("fortunes-min", "sentences: the BSD fortune databases (part 1)"),
    Package("fortunes", "sentences: the BSD fortune databases (part 2)"),
    Package("fortunes-de", "sentences in German (--language de)"),
    Package("fortunes-es", "sentences in Spanish (--language es)"),
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
