"""The .stok format: exact round trip, size equal to the bitrate, clear errors for bad files."""

from __future__ import annotations

import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sonorant.codec.tokenfile import HEADER_SIZE, TokenFile
from sonorant.core import TokenFileError


def _tokens(k: int, frames: int, bits: int = 10, seed: int = 0) -> TokenFile:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (k, frames), generator=g)
    return TokenFile(codes=codes, fingerprint="0123456789abcdef", sample_rate=16000, hop_length=320, bits=bits,
                     num_samples=frames * 320 - 100)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 8), frames=st.integers(1, 60), bits=st.integers(1, 16))
def test_round_trip_is_exact(k, frames, bits):
    tokens = _tokens(k, frames, bits)
    back = TokenFile.from_bytes(tokens.to_bytes())
    assert torch.equal(back.codes, tokens.codes)
    assert (back.fingerprint, back.num_samples, back.bits) == (tokens.fingerprint, tokens.num_samples, bits)


@pytest.mark.parametrize("k", [1, 4, 8])
def test_ten_seconds_size_matches_bitrate(k):
    tokens = _tokens(k, 500)  # 10 s at 50 Hz
    expected = tokens.bitrate * 10 / 8 + HEADER_SIZE
    assert abs(len(tokens.to_bytes()) - expected) <= 0.05 * expected


def test_write_and_read(tmp_path):
    path = tmp_path / "a.stok"
    _tokens(4, 30).write(path)
    assert torch.equal(TokenFile.read(path).codes, _tokens(4, 30).codes)
    assert [p.name for p in tmp_path.iterdir()] == ["a.stok"]


def test_truncated_file_is_an_error():
    data = _tokens(8, 50).to_bytes()
    with pytest.raises(TokenFileError, match="truncated"):
        TokenFile.from_bytes(data[:-10])
    with pytest.raises(TokenFileError, match="truncated header"):
        TokenFile.from_bytes(data[:20])


def test_other_version_is_an_error():
    data = bytearray(_tokens(2, 5).to_bytes())
    struct.pack_into("<H", data, 4, 99)
    with pytest.raises(TokenFileError, match="version 99"):
        TokenFile.from_bytes(bytes(data))


def test_corrupt_payload_is_an_error():
    data = bytearray(_tokens(2, 50).to_bytes())
    data[-3] ^= 0xFF
    with pytest.raises(TokenFileError, match="checksum"):
        TokenFile.from_bytes(bytes(data))


def test_not_a_token_file():
    with pytest.raises(TokenFileError, match="not a sonorant token file"):
        TokenFile.from_bytes(b"RIFF....WAVEfmt ")


def test_other_codec_is_an_error():
    tokens = _tokens(2, 5)
    tokens.check_codec("0123456789abcdef", 16000, 320, 8)
    with pytest.raises(TokenFileError, match="made by codec"):
        tokens.check_codec("fedcba9876543210", 16000, 320, 8)


def _version_1(tokens: TokenFile) -> bytes:
    """The same tokens as a version 1 file wrote them: the checksum covers the payload only."""
    import zlib

    data = bytearray(tokens.to_bytes())
    struct.pack_into("<H", data, 4, 1)
    struct.pack_into("<I", data, HEADER_SIZE - 4, zlib.crc32(bytes(data[HEADER_SIZE:])))
    return bytes(data)


def test_version_1_files_are_still_read():
    tokens = _tokens(3, 40)
    back = TokenFile.from_bytes(_version_1(tokens))
    assert torch.equal(back.codes, tokens.codes) and back.num_samples == tokens.num_samples


@pytest.mark.parametrize("offset, fmt, value", [(16, "<I", 49536), (36, "<Q", 40 * 320 - 101), (24, "<B", 2),
                                                 (25, "<B", 9), (8, "<B", 0x12)])
def test_the_checksum_covers_the_header(offset, fmt, value):
    data = bytearray(_tokens(3, 40).to_bytes())  # sample rate, sample count, codebooks, bits, fingerprint
    struct.pack_into(fmt, data, offset, value)
    with pytest.raises(TokenFileError, match="checksum"):
        TokenFile.from_bytes(bytes(data))


@pytest.mark.parametrize("offset, fmt, value", [(16, "<I", 5), (20, "<I", 0), (24, "<B", 0), (25, "<B", 17),
                                                 (26, "<H", 7), (28, "<I", 0), (36, "<Q", 10**9)])
def test_every_header_field_is_checked(offset, fmt, value):
    import zlib

    data = bytearray(_tokens(3, 40).to_bytes())  # crafted: the field changed and the checksum made to match
    struct.pack_into(fmt, data, offset, value)
    struct.pack_into("<I", data, HEADER_SIZE - 4, zlib.crc32(bytes(data[HEADER_SIZE:]), zlib.crc32(bytes(data[:40]))))
    with pytest.raises(TokenFileError, match="corrupt header"):
        TokenFile.from_bytes(bytes(data))


def test_codes_beyond_the_codebook_are_refused():
    tokens = _tokens(2, 30, bits=16)  # a crafted file: valid checksum and fingerprint, 16-bit codes
    back = TokenFile.from_bytes(tokens.to_bytes())
    with pytest.raises(TokenFileError, match="codebooks have 1024 entries"):
        back.check_codec("0123456789abcdef", 16000, 320, 8, codebook_size=1024)


def test_long_files_pack_in_pieces():
    tokens = _tokens(8, 9000, bits=10)  # 72,000 codes: more than one packing piece
    assert torch.equal(TokenFile.from_bytes(tokens.to_bytes()).codes, tokens.codes)
