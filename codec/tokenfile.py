"""The `.stok` token file: a small versioned header, then bit-packed codes.

Layout (little-endian): magic "STOK", version u16, header size u16, codec fingerprint (8 bytes),
sample rate u32, hop length u32, codebooks u8, bits per code u8, reserved u16, frames u32,
original samples u64, CRC-32 of the payload u32; then frames x codebooks codes of `bits` bits
each, frame-major, packed LSB-first. The file size is the bitrate times the duration plus 44 bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .errors import TokenFileError

MAGIC = b"STOK"
VERSION = 1
_HEADER = struct.Struct("<4sHH8sIIBBHIQI")
HEADER_SIZE = _HEADER.size


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
                              self.hop_length, self.num_codebooks, self.bits, 0, self.frames, self.num_samples,
                              zlib.crc32(payload))
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
        (_, version, header_size, fingerprint, sample_rate, hop, k, bits, _, frames, samples,
         crc) = _HEADER.unpack_from(data)
        if version != VERSION:
            raise TokenFileError(f"{name}: token file version {version} is not supported "
                                 f"(this sonorant reads version {VERSION})")
        if header_size != HEADER_SIZE or k == 0 or bits == 0 or bits > 16 or hop == 0 or sample_rate == 0:
            raise TokenFileError(f"{name}: corrupt header")
        if not (frames - 1) * hop < samples <= frames * hop:
            raise TokenFileError(f"{name}: corrupt header ({samples} samples do not fit {frames} frames)")
        payload = data[HEADER_SIZE:]
        expected = -(-frames * k * bits // 8)
        if len(payload) < expected:
            raise TokenFileError(f"{name}: truncated ({len(payload)} of {expected} payload bytes)")
        if len(payload) > expected or zlib.crc32(payload) != crc:
            raise TokenFileError(f"{name}: corrupt payload (checksum mismatch)")
        codes = torch.from_numpy(_unpack(payload, frames * k, bits).reshape(frames, k).T.copy())
        return cls(codes=codes, fingerprint=fingerprint.hex(), sample_rate=sample_rate, hop_length=hop,
                   bits=bits, num_samples=samples)

    @classmethod
    def read(cls, path: str | Path) -> TokenFile:
        path = Path(path)
        if not path.is_file():
            raise TokenFileError(f"{path}: no such token file")
        return cls.from_bytes(path.read_bytes(), str(path))

    def check_codec(self, fingerprint: str, sample_rate: int, hop_length: int, num_codebooks: int) -> None:
        """Raise TokenFileError unless these codes came from the codec described by the arguments."""
        if self.fingerprint != fingerprint:
            raise TokenFileError(f"the tokens were made by codec {self.fingerprint}, not by this model "
                                 f"({fingerprint}); decode with the model that encoded them (--model)")
        if (self.sample_rate, self.hop_length) != (sample_rate, hop_length) or self.num_codebooks > num_codebooks:
            raise TokenFileError("the token file does not match this codec's rate or codebooks")


def _pack(values: np.ndarray, bits: int) -> bytes:
    planes = ((values[:, None] >> np.arange(bits)) & 1).astype(np.uint8)  # [N, bits], LSB first
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def _unpack(payload: bytes, count: int, bits: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), bitorder="little")[: count * bits]
    return (planes.reshape(count, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)
