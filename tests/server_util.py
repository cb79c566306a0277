"""Helpers for the server's tests: a tiny bundle's app, a live uvicorn on loopback, WAV parsing."""

from __future__ import annotations

import http.client
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

# Small enough for two busy cores: 0.4 s of audio at most, the first audio after two frames.
MAX_SECONDS = 0.4


def server_config(tmp_path, **overrides):
    from sonorant.server import ServerConfig

    settings = dict(voices=tmp_path / "voices", max_seconds=MAX_SECONDS, max_text_chars=300,
                    max_upload_bytes=600_000, max_concurrent=2, max_queue=4, queue_timeout_s=20.0)
    return ServerConfig(**{**settings, **overrides})


def reference(synth, text: str, seed: int, voice=None, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """What the server should send for (text, seed): the library's samples as 16-bit PCM."""
    import torch

    from sonorant.server import ServerConfig
    from sonorant.server.formats import pcm16

    defaults = ServerConfig()  # the server streams with its configured chunking
    chunks = synth.stream(text, voice=voice, seed=seed, max_seconds=max_seconds, first_frames=defaults.first_frames,
                          chunk_frames=defaults.chunk_frames)
    samples = torch.cat([c.samples for c in chunks])
    return np.frombuffer(pcm16(samples), dtype="<i2")


def wav_samples(data: bytes) -> np.ndarray:
    """The 16-bit samples of a WAV stream (whose header may say "length unknown")."""
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt ", data[:16]
    channels, rate, bits = struct.unpack("<H I 6x H", data[22:36])
    assert (channels, bits) == (1, 16) and data[36:40] == b"data"
    return np.frombuffer(data[44:], dtype="<i2")


@contextmanager
def live_server(app) -> Iterator[tuple[str, int]]:
    """Run `app` under uvicorn on 127.0.0.1 (a free port) in a thread; yields (host, port)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def post_json(host: str, port: int, path: str, body: bytes, timeout: float = 60.0,
              headers: dict | None = None) -> http.client.HTTPConnection:
    """Send a POST and return the open connection (read its response with getresponse())."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    return connection


_SYNTH = []


def tiny_synth():
    """One Synthesizer on a tiny bundle (shipped codec, small untrained LM) for all the server's tests."""
    if not _SYNTH:
        import atexit
        import shutil
        import tempfile
        from pathlib import Path

        from sonorant.tts import Synthesizer

        from .test_tts import make_bundle

        root = Path(tempfile.mkdtemp(prefix="sonorant-server-test-"))
        atexit.register(shutil.rmtree, root, True)
        _SYNTH.append(Synthesizer.from_pretrained(make_bundle(root / "bundle")))
    return _SYNTH[0]
