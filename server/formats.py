"""Audio response formats, encoded as the samples come so a response can stream.

`wav` streams a RIFF header whose sizes say "unknown" (0xFFFFFFFF, as streaming servers do; libsndfile,
browsers and ffmpeg read to the end) followed by 16-bit PCM; `pcm` is raw 16-bit little-endian mono; `ogg`
(Vorbis) and `opus` go through libsndfile into an in-memory sink whose new pages are sent as they appear.
`flac` and `mp3` are written by libsndfile too, but sent whole when the audio is complete: libsndfile
rewrites their headers (total length, the Xing frame) on close, and a stream without them misleads readers.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf
import torch

from .errors import ApiError

# name -> (media type, libsndfile format, subtype); None for the formats written here.
FORMATS: dict[str, tuple[str, str | None, str | None]] = {
    "wav": ("audio/wav", None, None),
    "pcm": ("audio/pcm", None, None),
    "flac": ("audio/flac", "FLAC", "PCM_16"),
    "ogg": ("audio/ogg", "OGG", "VORBIS"),
    "opus": ("audio/ogg; codecs=opus", "OGG", "OPUS"),
    "mp3": ("audio/mpeg", "MP3", "MPEG_LAYER_III"),
}
WHOLE = ("flac", "mp3")  # sent once complete (see above)


def available_formats() -> list[str]:
    """The response formats this installation's libsndfile can write."""
    names = []
    for name, (_, fmt, subtype) in FORMATS.items():
        if fmt is None or (fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)):
            names.append(name)
    return names


def check_format(name: str) -> str:
    if name not in available_formats():
        raise ApiError(400, f"response_format {name!r} is not supported; use one of {', '.join(available_formats())}",
                       param="response_format", code="unsupported_format")
    return name


def media_type(name: str) -> str:
    return FORMATS[name][0]


def pcm16(samples: torch.Tensor) -> bytes:
    """Float samples [n] in [-1, 1] -> 16-bit little-endian PCM."""
    return (samples.clamp(-1, 1) * 32767).round().to(torch.int16).numpy().astype("<i2").tobytes()


def wav_header(sample_rate: int, data_bytes: int = 0xFFFFFFFF) -> bytes:
    """A 44-byte RIFF/WAVE header for 16-bit mono; the default sizes mean "until the stream ends"."""
    riff = 0xFFFFFFFF if data_bytes == 0xFFFFFFFF else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate,
                                                                          sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


class _Sink(io.RawIOBase):
    """A seekable in-memory file for libsndfile that remembers which bytes were already handed out."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer, self.position, self.sent = bytearray(), 0, 0

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        end = self.position + len(data)
        if end > len(self.buffer):
            self.buffer.extend(b"\0" * (end - len(self.buffer)))
        self.buffer[self.position:end] = data
        self.position = end
        return len(data)

    def read(self, size: int = -1) -> bytes:
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.position + size)
        out = bytes(self.buffer[self.position:end])
        self.position = end
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: len(self.buffer)}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = bytes(self.buffer[self.sent:])
        self.sent = len(self.buffer)
        return out


class AudioEncoder:
    """`write(samples)` returns the bytes ready to send; `close()` the rest."""

    def __init__(self, name: str, sample_rate: int) -> None:
        self.name, self.sample_rate = check_format(name), sample_rate
        self.started = False
        self._sink: _Sink | None = None
        self._file: sf.SoundFile | None = None
        _, fmt, subtype = FORMATS[name]
        if fmt is not None:
            self._sink = _Sink()
            self._file = sf.SoundFile(self._sink, "w", samplerate=sample_rate, channels=1, format=fmt, subtype=subtype)

    def write(self, samples: torch.Tensor) -> bytes:
        if self._file is None:
            head = b"" if self.started or self.name == "pcm" else wav_header(self.sample_rate)
            self.started = True
            return head + pcm16(samples)
        self._file.write(samples.clamp(-1, 1).numpy().astype(np.float32))
        return b"" if self.name in WHOLE else self._sink.take()

    def close(self) -> bytes:
        if self._file is None:
            tail = b"" if self.started or self.name == "pcm" else wav_header(self.sample_rate, 0)
            self.started = True
            return tail
        self._file.close()
        self._file = None
        return self._sink.take()


def encode_whole(name: str, samples: torch.Tensor, sample_rate: int) -> bytes:
    """All of `samples` in format `name`, with exact sizes in the header (not streamed)."""
    if name == "wav":
        data = pcm16(samples)
        return wav_header(sample_rate, len(data)) + data
    encoder = AudioEncoder(name, sample_rate)
    return encoder.write(samples) + encoder.close()
