"""`POST /v1/audio/speech`, OpenAI-compatible: the audio streams out (chunked) as it is generated."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from ..core.errors import SonorantError
from ..tts.synthesizer import AudioChunk, SynthesisInfo
from .errors import ApiError
from .formats import AudioEncoder, check_format, media_type
from .limiter import Slot
from .service import Service

router = APIRouter()

SPEED = (0.5, 2.0)  # the LM's pointer bias is calibrated for this range


class SpeechRequest(BaseModel):
    """OpenAI's fields, and Sonorant's sampling controls (seed, temperature, top_k, top_p, language)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "sonorant"  # any name: the server runs the one model it loaded
    input: str
    voice: str | None = None  # a bundle or saved voice; None = the bundle's default
    response_format: str = "wav"
    speed: float = 1.0
    instructions: str | None = None  # accepted for compatibility; the model takes no instructions
    stream_format: str | None = None  # only "audio"
    language: str = "en-us"
    seed: int | None = None
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)


def check_text(text: str, limit: int, param: str = "input") -> str:
    if not text.strip():
        raise ApiError(400, f"{param} is empty", param=param, code="empty_text")
    if len(text) > limit:
        raise ApiError(400, f"{param} has {len(text)} characters; the limit is {limit}", param=param,
                       code="text_too_long")
    return text


def check_speed(speed: float) -> float:
    if not SPEED[0] <= speed <= SPEED[1]:
        raise ApiError(400, f"speed must be between {SPEED[0]:g} and {SPEED[1]:g}, got {speed:g}", param="speed")
    return speed


def synthesis_options(service: Service, body: SpeechRequest) -> dict:
    c = service.config
    return dict(seed=body.seed, temperature=body.temperature, top_k=body.top_k, top_p=body.top_p,
                speed=body.speed, max_seconds=c.max_seconds, first_frames=c.first_frames,
                chunk_frames=c.chunk_frames)


class ClosingStream(StreamingResponse):
    """A StreamingResponse that, however it ends (finished, client gone, error), closes its body at once:
    the body's `finally` frees the synthesis slot."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


def _next(stream: Iterator[AudioChunk]) -> AudioChunk | None:
    return next(stream, None)


async def start_stream(service: Service, stream: Iterator[AudioChunk]) -> AudioChunk | None:
    """The first chunk, computed before the response starts, so that a text the frontend refuses (an
    unknown language, nothing speakable) is still a 400."""
    try:
        return await run_in_threadpool(_next, stream)
    except SonorantError as e:
        raise ApiError(400, str(e), param="input") from None


async def audio_body(service: Service, stream: Iterator[AudioChunk], first: AudioChunk | None, encoder: AudioEncoder,
                     info: SynthesisInfo, slot: Slot, arrived: float) -> AsyncIterator[bytes]:
    metrics = service.metrics
    seconds = 0.0
    try:
        chunk = first
        while chunk is not None:
            data = encoder.write(chunk.samples)
            seconds += chunk.samples.numel() / chunk.sample_rate
            if data:
                if seconds and arrived:
                    metrics.first_audio.observe(time.perf_counter() - arrived)
                    arrived = 0.0
                yield data
            chunk = await run_in_threadpool(_next, stream)
        tail = encoder.close()
        if tail:
            yield tail
        metrics.audio_seconds.inc(seconds)
        if seconds > 0:
            metrics.real_time_factor.observe(info.synthesis_s / seconds)
    finally:
        stream.close()  # the generator stops between frames: nothing keeps running for a gone client
        slot.release()


@router.post("/v1/audio/speech")
async def speech(request: Request, body: SpeechRequest) -> StreamingResponse:
    arrived = time.perf_counter()
    service: Service = request.app.state.service
    fmt = check_format(body.response_format)
    text = check_text(body.input, service.config.max_text_chars)
    check_speed(body.speed)
    if body.stream_format not in (None, "audio"):
        raise ApiError(400, "stream_format: only 'audio' is supported", param="stream_format")
    voice = await run_in_threadpool(service.voice, body.voice)
    options = synthesis_options(service, body)
    slot = await service.limiter.acquire()
    try:
        info = SynthesisInfo(mode="none")
        stream = service.synth.stream(text, voice=voice, lang=body.language, info=info, **options)
        first = await start_stream(service, stream)
        encoder = AudioEncoder(fmt, service.synth.sample_rate)
    except BaseException:
        slot.release()
        raise
    headers = {"X-Sample-Rate": str(service.synth.sample_rate), "X-Voice-Mode": info.mode,
               "Cache-Control": "no-store"}
    return ClosingStream(audio_body(service, stream, first, encoder, info, slot, arrived),
                         media_type=media_type(fmt), headers=headers)
