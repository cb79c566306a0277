"""Atomic file writes: a reader (or a crash) never sees half a file, and failures leave nothing behind.

A temporary file is named `.NAME.PID.XXXXXXXX.SUFFIX` next to its target. A process killed outright
(SIGKILL, power loss) cannot remove it, so the next write to the same target removes those whose
writer process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LEGACY_STALE_SECONDS = 3600  # temp names without a writer pid (older versions): stale after an hour untouched


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary name next to `path`; it is renamed to `path` when the block succeeds and
    removed when it fails. The file gets the usual permissions (0666 minus the umask), not mkstemp's 0600."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temps(folder, path.name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(path.name), suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data.encode() if isinstance(data, str) else data)


def temp_prefix(name: str) -> str:
    """The prefix of this process's temporary files (and folders) for the target `name`."""
    return f".{name}.{os.getpid()}."


def remove_stale_temps(folder: str | Path, name: str) -> list[Path]:
    """Remove the temporary files and folders left in `folder` for the target `name` by writers that died."""
    folder = Path(folder)
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}(?:\.[^/]*)?")
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(f".{name}.")]
    except OSError:
        return removed
    for temp in candidates:
        match = pattern.fullmatch(temp.name)
        if match is None or not _stale(temp, match.group(1)):
            continue
        try:
            shutil.rmtree(temp) if temp.is_dir() and not temp.is_symlink() else temp.unlink()
            removed.append(temp)
        except OSError:
            pass  # another process cleaned it first, or it is not ours to remove
    return removed


def _stale(temp: Path, pid: str | None) -> bool:
    if pid is None:
        try:
            return time.time() - temp.lstat().st_mtime > LEGACY_STALE_SECONDS
        except OSError:
            return False
    return not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or not a pid we can ask about): leave its files alone
    return True


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
