"""`GET/POST /v1/voices`, `DELETE /v1/voices/{name}`: the saved-voice store, over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from .errors import ApiError
from .service import Service
from .speech import check_text

router = APIRouter()


@router.get("/v1/voices")
async def list_voices(request: Request) -> dict:
    service: Service = request.app.state.service
    return {"object": "list", "data": await run_in_threadpool(service.voices)}


@router.post("/v1/voices", status_code=201)
async def add_voice(request: Request, name: str = Form(...), file: UploadFile = File(...),
                    text: str | None = Form(None), language: str = Form("en-us")) -> dict:
    """A voice prompt (any audio file soundfile reads, 1-10 s of one speaker) and, best, its transcript."""
    service: Service = request.app.state.service
    if text is not None and text.strip():
        check_text(text, service.config.max_text_chars, "text")
    data = await file.read()
    if not data:
        raise ApiError(400, "the uploaded file is empty", param="file", code="invalid_audio")
    suffix = "." + file.filename.rsplit(".", 1)[-1] if file.filename and "." in file.filename else ""
    slot = await service.limiter.acquire()
    try:
        return await run_in_threadpool(service.add_voice, name, data, suffix, text, language)
    finally:
        slot.release()


@router.delete("/v1/voices/{name}")
async def delete_voice(request: Request, name: str) -> dict:
    service: Service = request.app.state.service
    await run_in_threadpool(service.remove_voice, name)
    return {"id": name, "object": "voice", "deleted": True}
