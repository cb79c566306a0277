"""Reading job files (TTS batches, evaluation cases): one reader, one rule for relative paths."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import SonorantError


def read_lines(path: str | Path, kind: str) -> list[tuple[int, str]]:
    """(line number, line) of each non-blank line of a UTF-8 text file; one clear error for a missing, binary or
    empty file (`kind` names the file in them: "batch" -> "no such batch file")."""
    path = Path(path)
    if not path.is_file():
        raise SonorantError(f"{path}: no such {kind} file")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        content = "\0"
    if "\0" in content:
        raise SonorantError(f"{path}: not a text file (a {kind} file is JSON Lines, or one text per line, in UTF-8)")
    lines = [(number, line) for number, line in enumerate(content.splitlines(), 1) if line.strip()]
    if not lines:
        raise SonorantError(f"{path}: the {kind} file is empty")
    return lines


def read_jsonl(path: str | Path, kind: str) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSON Lines file; a line that is not a JSON object is
    a one-line error naming the file and line."""
    rows = []
    for number, line in read_lines(path, kind):
        try:
            row = json.loads(line)
        except ValueError as e:
            raise SonorantError(f"{path}:{number}: bad {kind} line ({e})") from None
        if not isinstance(row, dict):
            raise SonorantError(f"{path}:{number}: bad {kind} line (a JSON object is needed, not "
                                f"{type(row).__name__})")
        rows.append((number, row))
    return rows


def relative_to_file(path: str | Path, value: str) -> str:
    """A path written in a job file: as written when absolute, else relative to the file's folder."""
    return value if Path(value).is_absolute() else str(Path(path).parent / value)
