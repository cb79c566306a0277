"""The package arrows of the README's Layout section hold: each package imports only the ones below it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "core": set(),
    "text": {"core"},
    "codec": {"core"},
    "lm": {"core"},
    "align": {"core", "text", "codec"},
    "data": {"core", "text", "codec", "align"},
    "training": {"core", "text", "codec", "lm", "align", "data"},
    "tts": {"core", "text", "codec", "lm", "align"},
    "server": {"core", "text", "codec", "lm", "align", "tts"},
    "evaluation": {"core", "text", "codec", "lm", "align", "data", "training", "tts", "server"},
}
IMPORT = re.compile(r"^\s*from\s+(?:\.\.(\w+)|sonorant\.(\w+))", re.M)


def imported_packages(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Sibling packages each module of `package` imports (relative `..x` or absolute `sonorant.x`)."""
    out = {}
    for path in (root / package).rglob("*.py"):
        names = {a or b for a, b in IMPORT.findall(path.read_text(encoding="utf-8"))}
        out[str(path.relative_to(root))] = names - {package}
    return out


def test_packages_import_only_what_the_layout_allows():
    wrong = {f"{module} imports {sorted(names - ALLOWED[package])}"
             for package in ALLOWED for module, names in imported_packages(package).items()
             if names - ALLOWED[package] - {"pretrained", "configs"}}
    assert not wrong, wrong


def test_the_checker_sees_a_forbidden_import(tmp_path):
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "bad.py").write_text("import torch\n\nfrom ..training.trainer import Trainer\n"
                                            "from sonorant.core.errors import SonorantError\n")
    assert imported_packages("lm", tmp_path) == {"lm/bad.py": {"training", "core"}}
