"""The `.stok` token file: a small versioned header, then bit-packed codes.

Layout (little-endian): magic "STOK", version u16, header size u16, codec fingerprint (8 bytes),
sample rate u32, hop length u32, codebooks u8, bits per code u8, reserved u16 (zero), frames u32,
original samples u64, CRC-32 u32; then frames x codebooks codes of `bits` bits each, frame-major,
packed LSB-first. The file size is the bitrate times the duration plus 44 bytes.

Version 2 (written) checksums the header (its first 40 bytes) and the payload, so a flipped bit in the
sample rate or the sample count is caught like one in the codes; version 1 (still read) checksummed
the payload only. Every header field is checked on reading.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.atomic import atomic_write
from ..core.errors import TokenFileError

if TYPE_CHECKING:
    import torch

MAGIC = b"STOK"
VERSION = 2
READABLE_VERSIONS = (1, 2)
_HEADER = struct.Struct("<4sHH8sIIBBHIQI")
HEADER_SIZE = _HEADER.size
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
_PACK_VALUES = 1 << 16  # codes packed or unpacked at a time (a multiple of 8: whole bytes), so memory stays small


@dataclass
class TokenFile:
    codes: torch.Tensor  # [K, T] long
    fingerprint: str  # 16 hex digits of the codec that made the codes
    sample_rate: int
    hop_length: int
    bits: int  # bits per code: ceil(log2(codebook size))
    num_samples: int  # length of the original audio, so decoding returns exactly that many samples

    @property
    def num_codebooks(self) -> int:
        return self.codes.shape[0]

    @property
    def frames(self) -> int:
        return self.codes.shape[1]

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def bitrate(self) -> float:
        return self.frame_rate * self.num_codebooks * self.bits

    def to_bytes(self) -> bytes:
        codes = self.codes.detach().cpu().long()
        if codes.dim() != 2 or codes.numel() == 0:
            raise TokenFileError("a token file needs codes [K, T] with at least one frame")
        if codes.min() < 0 or codes.max() >= 2**self.bits:
            raise TokenFileError(f"codes do not fit in {self.bits} bits")
        payload = _pack(codes.T.reshape(-1).numpy(), self.bits)
        header = _HEADER.pack(MAGIC, VERSION, HEADER_SIZE, bytes.fromhex(self.fingerprint), self.sample_rate,
                              self.hop_length, self.num_codebooks, self.bits, 0, self.frames, self.num_samples, 0)
        header = header[:-4] + struct.pack("<I", zlib.crc32(payload, zlib.crc32(header[:-4])))
        return header + payload

    def write(self, path: str | Path) -> None:
        """Write atomically: on any failure no partial file is left at `path`."""
        path = Path(path)
        data = self.to_bytes()
        atomic_write(path, data)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "token file") -> TokenFile:
        if len(data) < 4 or data[:4] != MAGIC:
            raise TokenFileError(f"{name}: not a sonorant token file (.stok)")
        if len(data) < HEADER_SIZE:
            raise TokenFileError(f"{name}: truncated header ({len(data)} of {HEADER_SIZE} bytes)")
        (_, version, header_size, fingerprint, sample_rate, hop, k, bits, reserved, frames, samples,
         crc) = _HEADER.unpack_from(data)
        if version not in READABLE_VERSIONS:
            raise TokenFileError(f"{name}: token file version {version} is not supported "
                                 f"(this sonorant reads versions {', '.join(map(str, READABLE_VERSIONS))})")
        payload = memoryview(data)[HEADER_SIZE:]
        expected = -(-frames * k * bits // 8)
        if version >= 2 and zlib.crc32(payload, zlib.crc32(data[:HEADER_SIZE - 4])) != crc:
            raise TokenFileError(f"{name}: truncated ({len(payload)} of {expected} payload bytes)"
                                 if len(payload) < expected else f"{name}: corrupt file (checksum mismatch)")
        problem = _header_problem(header_size, sample_rate, hop, k, bits, reserved, frames, samples)
        if problem:
            raise TokenFileError(f"{name}: corrupt header ({problem})")
        if len(payload) < expected:
            raise TokenFileError(f"{name}: truncated ({len(payload)} of {expected} payload bytes)")
        if len(payload) > expected or (version == 1 and zlib.crc32(payload) != crc):
            raise TokenFileError(f"{name}: corrupt payload (checksum mismatch)")
        import torch

        codes = torch.from_numpy(_unpack(payload, frames * k, bits).reshape(frames, k).T.copy())
        return cls(codes=codes, fingerprint=fingerprint.hex(), sample_rate=sample_rate, hop_length=hop,
                   bits=bits, num_samples=samples)

    @classmethod
    def read(cls, path: str | Path) -> TokenFile:
        path = Path(path)
        if not path.is_file():
            raise TokenFileError(f"{path}: no such token file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TokenFileError(f"{path}: cannot read it ({e.strerror or e})") from None
        return cls.from_bytes(data, str(path))

    def check_codec(self, fingerprint: str, sample_rate: int, hop_length: int, num_codebooks: int,
                    codebook_size: int | None = None) -> None:
        """Raise TokenFileError unless these codes came from the codec described by the arguments."""
        if self.fingerprint != fingerprint:
            raise TokenFileError(f"the tokens were made by codec {self.fingerprint}, not by this model "
                                 f"({fingerprint}); decode with the model that encoded them (--model)")
        if (self.sample_rate, self.hop_length) != (sample_rate, hop_length) or self.num_codebooks > num_codebooks:
            raise TokenFileError("the token file does not match this codec's rate or codebooks")
        if codebook_size is not None and int(self.codes.max()) >= codebook_size:
            raise TokenFileError(f"the token file holds code {int(self.codes.max())}; this codec's codebooks have "
                                 f"{codebook_size} entries")


def _header_problem(header_size: int, sample_rate: int, hop: int, k: int, bits: int, reserved: int, frames: int,
                    samples: int) -> str | None:
    """What is wrong with a header's fields, or None."""
    if header_size != HEADER_SIZE:
        return f"header size {header_size}, not {HEADER_SIZE}"
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        return f"sample rate {sample_rate} Hz"
    if not 0 < hop <= sample_rate:
        return f"hop length {hop}"
    if k == 0 or not 1 <= bits <= 16:
        return f"{k} codebooks of {bits} bits"
    if reserved != 0:
        return "reserved field is not zero"
    if frames == 0:
        return "no frames"
    if not (frames - 1) * hop < samples <= frames * hop:
        return f"{samples} samples do not fit {frames} frames"
    return None


def _pack(values: np.ndarray, bits: int) -> bytes:
    parts = []
    for start in range(0, values.shape[0], _PACK_VALUES):
        chunk = values[start:start + _PACK_VALUES]
        planes = ((chunk[:, None] >> np.arange(bits)) & 1).astype(np.uint8)  # [n, bits], LSB first
        parts.append(np.packbits(planes.reshape(-1), bitorder="little").tobytes())
    return b"".join(parts)


def _unpack(payload: bytes | memoryview, count: int, bits: int) -> np.ndarray:
    raw = np.frombuffer(payload, dtype=np.uint8)
    out = np.empty(count, dtype=np.int64)
    weights = 1 << np.arange(bits, dtype=np.int64)
    for start in range(0, count, _PACK_VALUES):
        n = min(_PACK_VALUES, count - start)
        first = start * bits // 8  # whole bytes: start is a multiple of 8
        planes = np.unpackbits(raw[first: first + -(-n * bits // 8)], bitorder="little")[: n * bits]
        out[start:start + n] = planes.reshape(n, bits) @ weights
    return out
