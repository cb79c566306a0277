"""`sonorant serve`: the HTTP + WebSocket server (needs the `server` extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..core.errors import SonorantError


def serve(
    model: Path = typer.Option(None, "--model", help="Model bundle directory (default: the shipped one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback is reachable by "
                                                          "others (use --api-key)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    max_concurrent: int = typer.Option(2, "--max-concurrent", min=1, help="Syntheses running at once."),
    max_queue: int = typer.Option(8, "--max-queue", min=0, help="Requests waiting for a slot; beyond: 503."),
    max_text_chars: int = typer.Option(4096, "--max-text-chars", min=1, help="Longest text per request."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.01, help="Largest request body (MB)."),
    api_key: str = typer.Option(None, "--api-key", envvar="SONORANT_API_KEY",
                                help="Require 'Authorization: Bearer KEY' (also read from $SONORANT_API_KEY)."),
    voices: Path = typer.Option(None, "--voices", help="Saved-voice folder (default: the one `sonorant voice` "
                                                       "uses)."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0 = torch's default)."),
) -> None:
    """Serve speech over HTTP: OpenAI-compatible POST /v1/audio/speech, a WebSocket, voices, codec, a web page."""
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
    except ImportError as e:
        raise SonorantError(f"sonorant serve needs the server extra ({e.name} is missing): "
                            "pip install 'sonorant[server]'") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"sonorant: warning: listening on {host}, not only on this machine: anyone who can reach it can use "
              f"it{'' if api_key else ' (no --api-key set)'}", file=sys.stderr)
    if threads:
        import torch

        torch.set_num_threads(threads)
    config = ServerConfig(model=model, device=device, max_concurrent=max_concurrent, max_queue=max_queue,
                          max_text_chars=max_text_chars, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                          api_key=api_key or None, voices=voices)
    app = create_app(config)
    print(f"sonorant: serving on http://{host if ':' not in host else f'[{host}]'}:{port}/ "
          f"(page at /, OpenAI speech at /v1/audio/speech)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", ws_max_size=1 << 20)
