"""Token shards: codec tokens of a corpus, encoded once, read with memory mapping for LM training.

A shard directory holds
- `index.json`: format version and the codec (fingerprint, rates, codebooks);
- per shard `NAME.codes` (uint16, frame-major `[frames, K]`, items back to back) and `NAME.jsonl`
  (one line per item: id, offset and frames into the codes, raw text, language, speaker, caption...).

A shard counts once its `.jsonl` exists (it is written last, atomically), so ranks of a parallel encode
write their own shards without coordinating, and an interrupted encode resumes where it stopped.
Everything is raw binary or JSON: reading a shard never executes code. Text stays raw (not phonemes)
so data does not depend on the text frontend.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_write
from ..core.errors import SonorantError
from .manifest import Labels

SHARD_FORMAT_VERSION = 1
INDEX = "index.json"
CODE_DTYPE = np.uint16  # codebooks up to 65536 entries


class ShardError(SonorantError):
    """A shard directory that is missing, damaged or from another codec."""


@dataclass(frozen=True)
class CodecInfo:
    fingerprint: str
    sample_rate: int
    frame_rate: float
    num_codebooks: int  # codebooks stored (may be fewer than the codec has)
    codebook_size: int


@dataclass(frozen=True, kw_only=True)
class TokenMeta(Labels):
    id: str
    shard: str
    offset: int  # first frame inside the shard's codes
    frames: int


class ShardWriter:
    """Accumulates encoded items and writes them as one shard, atomically, when `flush`ed."""

    def __init__(self, directory: Path, name: str, num_codebooks: int) -> None:
        self.directory, self.name, self.num_codebooks = directory, name, num_codebooks
        self.codes: list[np.ndarray] = []
        self.meta: list[dict] = []
        self.frames = 0

    def add(self, codes: torch.Tensor, meta: dict) -> None:
        """codes [K, T] of one item; meta = manifest fields (id, text, speaker...)."""
        array = codes.T.contiguous().numpy().astype(CODE_DTYPE)  # [T, K]
        self.meta.append({**meta, "shard": self.name, "offset": self.frames, "frames": array.shape[0]})
        self.codes.append(array)
        self.frames += array.shape[0]

    def flush(self) -> bool:
        """Write the shard (codes first, then metadata: a shard counts as written once its jsonl exists)."""
        if not self.meta:
            return False
        codes = np.concatenate(self.codes) if self.codes else np.zeros((0, self.num_codebooks), CODE_DTYPE)
        atomic_write(self.directory / f"{self.name}.codes", codes.tobytes())
        lines = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in self.meta)
        atomic_write(self.directory / f"{self.name}.jsonl", lines.encode())
        return True


def shard_names(directory: str | Path) -> list[str]:
    """The complete shards of a directory, in name order."""
    return sorted(p.name.removesuffix(".jsonl") for p in Path(directory).glob("*.jsonl") if not p.name.startswith("."))


def write_index(directory: str | Path, codec: CodecInfo) -> Path:
    """Write the index (the codec the shards belong to)."""
    directory = Path(directory)
    index = {"format_version": SHARD_FORMAT_VERSION, "codec": asdict(codec)}
    path = directory / INDEX
    atomic_write(path, (json.dumps(index, indent=2) + "\n").encode())
    return path


def read_codec_info(directory: str | Path) -> CodecInfo | None:
    path = Path(directory) / INDEX
    if not path.is_file():
        return None
    return _load_index(path)


def completed_ids(directory: str | Path) -> set[str]:
    """Ids of items already written (for resuming an interrupted encode)."""
    done = set()
    for name in shard_names(directory):
        for line in (Path(directory) / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                done.add(json.loads(line)["id"])
    return done


class TokenShards:
    """Read-only view of a shard directory: `len()`, `meta[i]`, `codes(i) -> LongTensor [K, T]`."""

    def __init__(self, directory: str | Path, split: str | None = None) -> None:
        self.directory = Path(directory)
        path = self.directory / INDEX
        if not path.is_file():
            raise ShardError(f"{self.directory}: not a token shard directory (no {INDEX}; run sonorant data encode)")
        self.codec = _load_index(path)
        names = shard_names(self.directory)
        k = self.codec.num_codebooks
        self._codes: dict[str, np.ndarray] = {}
        self.meta: list[TokenMeta] = []
        for name in names:
            codes_path, meta_path = self.directory / f"{name}.codes", self.directory / f"{name}.jsonl"
            if not codes_path.is_file() or not meta_path.is_file():
                raise ShardError(f"{self.directory}: shard {name} has no {codes_path.name}")
            size = codes_path.stat().st_size
            itemsize = np.dtype(CODE_DTYPE).itemsize
            if size % (k * itemsize):
                raise ShardError(f"{codes_path}: size {size} is not a whole number of {k}-codebook frames")
            frames = size // (k * itemsize)
            self._codes[name] = (np.memmap(codes_path, dtype=CODE_DTYPE, mode="r", shape=(frames, k)) if frames
                                 else np.zeros((0, k), CODE_DTYPE))
            for number, line in enumerate(meta_path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    meta = TokenMeta(**json.loads(line))
                except (json.JSONDecodeError, TypeError) as e:
                    raise ShardError(f"{meta_path}:{number}: not a shard item ({e})") from None
                if meta.offset + meta.frames > frames:
                    raise ShardError(f"{meta_path}:{number}: item {meta.id} runs past the end of {codes_path.name}")
                if split is None or meta.split == split:
                    self.meta.append(meta)

    def __len__(self) -> int:
        return len(self.meta)

    def codes(self, index: int) -> torch.Tensor:
        """LongTensor [K, T] of item `index`."""
        m = self.meta[index]
        array = np.asarray(self._codes[m.shard][m.offset: m.offset + m.frames], dtype=np.int64)
        return torch.from_numpy(array).T.contiguous()

    @property
    def hours(self) -> float:
        return sum(m.frames for m in self.meta) / self.codec.frame_rate / 3600

    def check_codec(self, fingerprint: str) -> None:
        """Raise unless the shards were written by the codec with this fingerprint."""
        if fingerprint != self.codec.fingerprint:
            raise ShardError(f"{self.directory}: shards were encoded by codec {self.codec.fingerprint}, "
                             f"not by this codec ({fingerprint}); re-encode with sonorant data encode")


def _load_index(path: Path) -> CodecInfo:
    try:
        index = json.loads(path.read_text())
        if index.get("format_version", 0) > SHARD_FORMAT_VERSION:
            raise ShardError(f"{path}: shard format {index['format_version']} is newer than this sonorant")
        return CodecInfo(**index["codec"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ShardError(f"{path}: not a shard index ({e})") from None
