"""`/v1/tts/stream`: text arrives in pieces, 16-bit PCM and word timestamps go out as it is spoken.

Client -> server (JSON text frames; a bare text frame is a text piece):
  {"type": "start", "voice"?, "speed"?, "language"?, "seed"?, "temperature"?, "top_k"?, "top_p"?}  (optional, first)
  {"type": "text", "text": "Hello the"}   appended to the buffer; complete sentences are spoken as they form
  {"type": "flush"}                        speak whatever is buffered now
  {"type": "end"}                          speak the rest, then the server says "done" and closes
Server -> client:
  {"type": "ready", "sample_rate", "encoding": "pcm_s16le", "channels": 1, "voice_mode"}
  binary frames: mono 16-bit little-endian PCM at `sample_rate`
  {"type": "words", "words": [{"word", "start", "end"}]}   seconds from the start of this session's audio
  {"type": "spoken", "text", "audio_seconds", "ended"}      one piece of text finished
  {"type": "done", "audio_seconds"}                         then the socket closes (1000)
  {"type": "error", "error": {"message", "type", "param", "code"}}   then the socket closes (1008, or 1013 busy)
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..core.errors import SonorantError
from ..tts.synthesizer import SynthesisInfo
from .errors import ApiError, error_body
from .formats import pcm16
from .service import Service
from .speech import SpeechRequest, _next, check_speed, synthesis_options

router = APIRouter()

SENTENCE_END = re.compile(r"[.!?;:。！？]+[\"')\]]*\s")
MAX_PIECE_CHARS = 240  # a buffer this long without a sentence end is spoken up to its last space


@dataclass
class Session:
    buffer: str = ""
    received: int = 0  # characters of text received
    ending: bool = False
    pieces: asyncio.Queue = field(default_factory=asyncio.Queue)  # texts ready to speak; None = end

    def ready_text(self, flush: bool) -> str | None:
        """Cut the buffer after its last sentence end (all of it when flushing)."""
        if flush:
            text, self.buffer = self.buffer, ""
            return text if text.strip() else None
        ends = list(SENTENCE_END.finditer(self.buffer))
        cut = ends[-1].end() if ends else 0
        if not cut and len(self.buffer) > MAX_PIECE_CHARS:
            cut = self.buffer.rfind(" ", 0, MAX_PIECE_CHARS) + 1 or MAX_PIECE_CHARS
        if not cut:
            return None
        text, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return text if text.strip() else None


def _options(message: dict) -> SpeechRequest:
    fields = {k: v for k, v in message.items() if k not in ("type", "input")}
    try:
        return SpeechRequest(**fields, input=" ")
    except ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ()))
        raise ApiError(400, f"{param}: {first.get('msg')}" if param else str(first.get("msg")), param=param) \
            from None


async def _receive(ws: WebSocket, service: Service, session: Session, first: dict | None) -> None:
    """Read the client's messages into `session` until it ends or leaves (`first`: one already read)."""
    message = first
    while not session.ending:
        if message is None:
            message = await _read(ws)
        ready = _handle(message, session, service.config.max_text_chars)
        message = None
        if ready is not None:
            await session.pieces.put(ready)
    await session.pieces.put(None)


async def _read(ws: WebSocket) -> dict:
    raw = await ws.receive()
    if raw["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(raw.get("code", 1000))
    if raw.get("text") is None:
        raise ApiError(400, "send text frames (JSON messages or plain text), not binary", code="bad_message")
    return _parse(raw["text"])


def _handle(message: dict, session: Session, limit: int) -> str | None:
    """Apply one client message; returns text ready to speak, if any."""
    kind = message.get("type")
    if kind == "text":
        piece = message.get("text")
        if not isinstance(piece, str):
            raise ApiError(400, "text: must be a string", param="text")
        session.received += len(piece)
        if session.received > limit:
            raise ApiError(400, f"the session's text passed the limit of {limit} characters", param="text",
                           code="text_too_long")
        session.buffer += piece
        return session.ready_text(flush=False)
    if kind in ("flush", "end"):
        session.ending = kind == "end"
        return session.ready_text(flush=True)
    raise ApiError(400, f"unknown message type {kind!r} (start, text, flush, end)", param="type", code="bad_message")


def _parse(text: str) -> dict:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return {"type": "text", "text": text}  # a bare text frame is a piece of text
    if isinstance(message, str):
        return {"type": "text", "text": message}
    if not isinstance(message, dict):
        raise ApiError(400, "a message must be a JSON object", code="bad_message")
    return message


async def _speak(ws: WebSocket, service: Service, session: Session, body: SpeechRequest, voice) -> float:
    """Speak the pieces as they come; returns the seconds of audio sent."""
    rate = service.synth.sample_rate
    sent = 0.0
    index = 0
    while (text := await session.pieces.get()) is not None:
        options = synthesis_options(service, body)
        if body.seed is not None:
            options["seed"] = body.seed + 1000 * index
        info = SynthesisInfo(mode="none")
        stream = service.synth.stream(text, voice=voice, lang=body.language, info=info, **options)
        offset = sent
        try:
            while (chunk := await _run(stream)) is not None:
                if chunk.samples.numel():
                    await ws.send_bytes(pcm16(chunk.samples))
                    sent += chunk.samples.numel() / rate
                if chunk.words:
                    words = [{"word": w.label, "start": round(w.start + offset, 3), "end": round(w.end + offset, 3)}
                             for w in chunk.words]
                    await ws.send_json({"type": "words", "words": words})
        finally:
            stream.close()
        service.metrics.audio_seconds.inc(sent - offset)
        if sent > offset:
            service.metrics.real_time_factor.observe(info.synthesis_s / (sent - offset))
        await ws.send_json({"type": "spoken", "text": text, "audio_seconds": round(sent, 3),
                            "ended": all(info.ended)})
        index += 1
    return sent


async def _run(stream):
    try:
        return await run_in_threadpool(_next, stream)
    except SonorantError as e:
        raise ApiError(400, str(e), param="text") from None


@router.websocket("/v1/tts/stream")
async def tts_stream(ws: WebSocket) -> None:
    service: Service = ws.app.state.service
    await ws.accept()
    slot = None
    try:
        try:
            slot = await service.limiter.acquire()
            first = await _read(ws)
            starting = first.get("type") == "start"
            body = _options(first if starting else {})
            session = Session()
            check_speed(body.speed)
            voice = await run_in_threadpool(service.voice, body.voice)
            mode = "none" if voice is None else ("transcript" if voice.phonemes else "reference")
            await ws.send_json({"type": "ready", "sample_rate": service.synth.sample_rate, "encoding": "pcm_s16le",
                                "channels": 1, "voice_mode": mode})
            reader = asyncio.create_task(_receive(ws, service, session, None if starting else first))
            speaker = asyncio.create_task(_speak(ws, service, session, body, voice))
            done, _ = await asyncio.wait({reader, speaker}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    reader.cancel()
                    speaker.cancel()
                    raise task.exception()
            seconds = await speaker
            await ws.send_json({"type": "done", "audio_seconds": round(seconds, 3)})
            await ws.close(1000)
        except ApiError as e:
            await ws.send_json({"type": "error", **error_body(e.message, e.status, e.param, e.code)})
            await ws.close(1013 if e.status == 503 else 1008)
    except (WebSocketDisconnect, OSError):
        pass  # the client left: the finally below frees its slot
    finally:
        if slot is not None:
            slot.release()
