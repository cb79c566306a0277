"""The FastAPI app of `sonorant serve`: speech (HTTP and WebSocket), voices, codec, health, metrics, the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from ..tts import Synthesizer
from . import codec_api, speech, voices_api, ws
from .config import ServerConfig
from .errors import install_error_handlers
from .formats import available_formats
from .metrics import RequestCounter
from .middleware import BearerAuth, BodyLimit
from .service import Service

STATIC = Path(__file__).resolve().parent / "static"
MODEL_ID = "sonorant"


def create_app(config: ServerConfig | None = None, synth: Synthesizer | None = None) -> FastAPI:
    """The app, with its model loaded now (`synth`, when given, is used instead of loading `config.model`)."""
    config = config or ServerConfig()
    service = Service(config, synth)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield

    app = FastAPI(title="Sonorant", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.service = service
    install_error_handlers(app)
    for router in (speech.router, ws.router, voices_api.router, codec_api.router):
        app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": MODEL_ID, "sample_rate": service.synth.sample_rate}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "sonorant"}]}

    @app.get("/v1/info")
    async def info(request: Request) -> dict:
        c = request.app.state.service.config
        return {"sample_rate": service.synth.sample_rate, "formats": available_formats(),
                "max_text_chars": c.max_text_chars, "max_upload_bytes": c.max_upload_bytes,
                "speed": list(speech.SPEED), "auth": c.api_key is not None}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes)
    if config.api_key:
        app.add_middleware(BearerAuth, api_key=config.api_key)
    app.add_middleware(RequestCounter, metrics=service.metrics)
    return app
