"""`POST /v1/codec/encode` (audio in, `.stok` out) and `POST /v1/codec/decode` (`.stok` in, audio out)."""

from __future__ import annotations

import tempfile

import torch
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..codec import Codec
from ..codec.files import resolve_codebooks
from ..codec.tokenfile import TokenFile
from ..core.audio import load_audio
from ..core.errors import AudioError, SonorantError, TokenFileError
from .errors import ApiError
from .formats import check_format, encode_whole, media_type
from .service import Service, upload_path

router = APIRouter()

CHUNK_FRAMES = 250  # 5 s at 50 Hz: activations stay bounded whatever the upload's length


@torch.inference_mode()
def encode_chunked(codec: Codec, wav: torch.Tensor, num_codebooks: int) -> torch.Tensor:
    """Mono audio [1, N] -> codes [K, ceil(N / hop)], through a stream of this call's own."""
    state, step = codec.new_stream(1), CHUNK_FRAMES * codec.hop_length
    wav = wav.to(next(codec.parameters()).device)
    parts = [codec.encode_step(wav[None, :, i:i + step], num_codebooks, state) for i in range(0, wav.shape[-1], step)]
    parts.append(codec.encode_flush(num_codebooks, state))
    return torch.cat(parts, dim=-1)[0].cpu()


@torch.inference_mode()
def decode_chunked(codec: Codec, codes: torch.Tensor) -> torch.Tensor:
    """Codes [K, T] -> audio [T * hop], through a stream of this call's own."""
    state, codes = codec.new_stream(1), codes.to(next(codec.parameters()).device)
    parts = [codec.decode_step(codes[None, :, i:i + CHUNK_FRAMES], state)[0, 0].cpu()
             for i in range(0, codes.shape[-1], CHUNK_FRAMES)]
    parts.append(codec.decode_flush(state)[0, 0].cpu())
    return torch.cat(parts)


def _encode(service: Service, data: bytes, suffix: str, codebooks: int | None, bitrate: float | None) -> bytes:
    codec = service.synth.codec
    try:
        k = resolve_codebooks(codec, codebooks, bitrate)
    except SonorantError as e:
        raise ApiError(400, str(e).replace("--", ""), param="codebooks" if bitrate is None else "bitrate") from None
    with tempfile.TemporaryDirectory(prefix="sonorant-upload-") as tmp:
        path = upload_path(tmp, "audio", suffix)
        path.write_bytes(data)
        try:
            wav = load_audio(path, codec.sample_rate, allow_silent=True)
        except AudioError as e:
            raise ApiError(400, f"the uploaded file: {str(e).removeprefix(str(path) + ': ')}", param="file",
                           code="invalid_audio") from None
    codes = encode_chunked(codec, wav, k)
    return TokenFile(codes=codes, fingerprint=codec.fingerprint, sample_rate=codec.sample_rate,
                     hop_length=codec.hop_length, bits=codec.config.bits_per_code,
                     num_samples=wav.shape[-1]).to_bytes()


def _decode(service: Service, data: bytes, fmt: str) -> bytes:
    codec = service.synth.codec
    try:
        tokens = TokenFile.from_bytes(data, "the uploaded token file")
        tokens.check_codec(codec.fingerprint, codec.sample_rate, codec.hop_length, codec.num_codebooks)
    except TokenFileError as e:
        raise ApiError(400, str(e).replace(" (--model)", ""), param="file", code="invalid_tokens") from None
    samples = decode_chunked(codec, tokens.codes)[: tokens.num_samples]
    return encode_whole(fmt, samples, codec.sample_rate)


async def _upload(file: UploadFile) -> tuple[bytes, str]:
    data = await file.read()
    if not data:
        raise ApiError(400, "the uploaded file is empty", param="file")
    name = file.filename or ""
    return data, ("." + name.rsplit(".", 1)[-1] if "." in name else "")


@router.post("/v1/codec/encode")
async def encode(request: Request, file: UploadFile = File(...), codebooks: int | None = Form(None),
                 bitrate: float | None = Form(None)) -> Response:
    service: Service = request.app.state.service
    data, suffix = await _upload(file)
    slot = await service.limiter.acquire()
    try:
        body = await run_in_threadpool(_encode, service, data, suffix, codebooks, bitrate)
    finally:
        slot.release()
    return Response(body, media_type="application/octet-stream",
                    headers={"Content-Disposition": 'attachment; filename="audio.stok"'})


@router.post("/v1/codec/decode")
async def decode(request: Request, file: UploadFile = File(...), response_format: str = Form("wav")) -> Response:
    service: Service = request.app.state.service
    fmt = check_format(response_format)
    data, _ = await _upload(file)
    slot = await service.limiter.acquire()
    try:
        body = await run_in_threadpool(_decode, service, data, fmt)
    finally:
        slot.release()
    return Response(body, media_type=media_type(fmt),
                    headers={"Content-Disposition": f'attachment; filename="audio.{fmt}"',
                             "X-Sample-Rate": str(service.synth.sample_rate)})
