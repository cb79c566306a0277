"""`sonorant data encode`: a manifest's audio -> token shards, batched, resumable, split across ranks."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..codec import Codec
from ..codec.files import encode_audio
from ..core.audio import load_audio
from ..core.errors import AudioError
from .manifest import Item, of_speakers, read_manifest
from .shards import CodecInfo, ShardError, ShardWriter, completed_ids, read_codec_info, shard_names, write_index

LONG_SECONDS = 30.0  # longer items are encoded alone, in streaming chunks (bounded memory)


@dataclass
class EncodeResult:
    directory: Path
    encoded: int  # items encoded by this call
    already_done: int  # items found in shards written before (resume)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    frames: int = 0
    audio_seconds: float = 0.0


def rank_and_world() -> tuple[int, int]:
    """This process's share of the work under torchrun (RANK / WORLD_SIZE), else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@torch.inference_mode()
def speaker_items(items: list[Item], speakers: tuple[str, ...]) -> list[Item]:
    """The items of `speakers` (base-speaker prefixes; every item when empty)."""
    return [it for it in items if of_speakers(it.base_speaker, it.speaker, speakers)]


def encode_manifest(manifest: str | Path, codec: Codec, out: str | Path, num_codebooks: int | None = None,
                    batch_seconds: float = 60.0, shard_frames: int = 500_000, rank: int = 0, world: int = 1,
                    long_seconds: float = LONG_SECONDS, progress=None,
                    speakers: tuple[str, ...] = ()) -> EncodeResult:
    """Encode every item of `manifest` (this rank's share: items i with i % world == rank) into shards.

    Items are batched by length; items of `long_seconds` or more are encoded alone in streaming chunks.
    With `speakers`, only the items whose base speaker (or speaker) starts with one of those prefixes.
    """
    manifest, out = Path(manifest), Path(out)
    k = num_codebooks or codec.num_codebooks
    info = CodecInfo(codec.fingerprint, codec.sample_rate, codec.frame_rate, k, codec.codebook_size)
    out.mkdir(parents=True, exist_ok=True)
    existing = read_codec_info(out)
    if existing is not None and existing != info:
        raise ShardError(f"{out}: holds shards of another codec or codebook count ({existing.fingerprint}, "
                         f"K={existing.num_codebooks}); use a new --out")
    write_index(out, info)
    items = speaker_items(read_manifest(manifest), speakers)[rank::world]
    done = completed_ids(out)
    pending = [it for it in items if it.id not in done]
    result = EncodeResult(out, 0, len(items) - len(pending))
    prefix = f"shard-r{rank:03d}-"
    numbers = [int(m.group(1)) for n in shard_names(out) if (m := re.fullmatch(rf"{prefix}(\d+)", n))]
    next_number = max(numbers, default=-1) + 1
    writer = ShardWriter(out, f"{prefix}{next_number:05d}", k)

    # Similar lengths together: little padding per batch.
    pending.sort(key=lambda it: it.duration)
    for batch in _batches(pending, batch_seconds, long_seconds):
        loaded = []
        for item in batch:
            try:
                loaded.append((item, load_audio(manifest.parent / item.path, codec.sample_rate)))
            except AudioError as e:
                result.skipped[_reason(e)] += 1
        for item, codes in _encode(codec, loaded, k, long_seconds):
            writer.add(codes, _meta(item))
            result.encoded += 1
            result.frames += codes.shape[-1]
            result.audio_seconds += item.duration
            if writer.frames >= shard_frames:
                writer.flush()
                next_number += 1
                writer = ShardWriter(out, f"{prefix}{next_number:05d}", k)
        if progress:
            progress(len(batch))
    writer.flush()
    return result


def _batches(items: list[Item], batch_seconds: float, long_seconds: float) -> list[list[Item]]:
    batches, current, longest = [], [], 0.0
    for item in items:
        grown = max(longest, item.duration)
        if current and (item.duration >= long_seconds or grown * (len(current) + 1) > batch_seconds):
            batches.append(current)
            current, grown = [], item.duration
        current.append(item)
        longest = grown
    if current:
        batches.append(current)
    return batches


def _encode(codec: Codec, loaded: list[tuple[Item, torch.Tensor]], k: int, long_seconds: float):
    """Yield (item, codes [K, T]); short items in one padded batch, long ones streamed alone."""
    device = next(codec.parameters()).device
    long_samples = long_seconds * codec.sample_rate
    short = [(it, wav) for it, wav in loaded if wav.shape[-1] < long_samples]
    for item, wav in loaded:
        if wav.shape[-1] >= long_samples:
            yield item, encode_audio(codec, wav, k)
    if short:
        n = max(wav.shape[-1] for _, wav in short)
        padded = torch.stack([F.pad(wav, (0, n - wav.shape[-1])) for _, wav in short]).to(device)  # [B, 1, N]
        lengths = torch.tensor([wav.shape[-1] for _, wav in short], device=device)
        batch = codec.encode_batch(padded, lengths, k)
        for i, (item, _) in enumerate(short):
            yield item, batch.codes[i, :, : int(batch.lengths[i])].cpu()


def _meta(item: Item) -> dict:
    return {key: value for key, value in {"id": item.id, **item.labels()}.items() if value is not None}


def _reason(error: AudioError) -> str:
    message = str(error)
    for reason in ("no such file", "not a readable audio file", "holds no samples", "silent", "NaN", "longer"):
        if reason.lower() in message.lower():
            return reason
    return "unreadable"
