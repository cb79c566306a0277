"""Typed settings of `sonorant serve`: one dataclass, filled by the CLI's flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerConfig:
    model: Path | None = None  # bundle directory (None = the shipped one)
    device: str = "cpu"
    max_concurrent: int = 2  # syntheses running at once; one per core is a good start on CPU
    max_queue: int = 8  # requests waiting for a slot; beyond that: 503 with Retry-After
    queue_timeout_s: float = 30.0  # a waiting request gives up after this (503)
    max_text_chars: int = 4096  # per request (OpenAI's limit) and per WebSocket session
    max_upload_bytes: int = 20 * 1024 * 1024  # any request body: voice prompts, audio and token files
    max_seconds: float = 60.0  # of audio per request
    api_key: str | None = None  # with it, every endpoint but /healthz and the page needs `Bearer KEY`
    voices: Path | None = None  # the saved-voice store (None: the CLI's, $SONORANT_HOME/voices or XDG)
    first_frames: int = 2  # the first audio leaves after this many LM frames...
    chunk_frames: int = 16  # ...then every this many (320 ms; fewer, larger decoder calls cost less per frame)

    def __post_init__(self) -> None:
        for name in ("max_concurrent", "max_text_chars", "max_upload_bytes", "first_frames", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_queue < 0 or self.queue_timeout_s <= 0 or self.max_seconds <= 0:
            raise ValueError("max_queue must be >= 0, queue_timeout_s and max_seconds > 0")
