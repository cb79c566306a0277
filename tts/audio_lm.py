"""The LM without text: continue any audio, or generate sound / music from a caption."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ..core.audio import audio_info, load_audio
from ..core.errors import ModelError, SonorantError
from ..lm import Conditioning, Generation, SamplingConfig
from ..text.captions import beats_per_frame, caption_encoder
from .synthesizer import Audio, AudioChunk, SynthesisInfo, SynthesisOptions, Synthesizer, resolve_options

MAX_CONTEXT_SECONDS = 10.0


def _no_text(synth: Synthesizer) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.zeros(1, 1, dtype=torch.long, device=synth.device),
            torch.zeros(1, dtype=torch.long, device=synth.device))


def _sampling(options: SynthesisOptions, frames: int, guided: bool) -> SamplingConfig:
    # The user asked for this many seconds: the end decision is not taken before them. Guidance needs a
    # condition to drop: a continuation has none.
    return SamplingConfig(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
                          cfg_scale=options.guidance if guided else None, seed=options.seed, max_frames=frames,
                          min_frames=frames)


@torch.no_grad()
def continue_audio(synth: Synthesizer, path: str | Path, seconds: float = 5.0, include_prompt: bool = True,
                   options: SynthesisOptions | None = None, **overrides) -> Audio:
    """`seconds` of audio that continue the file at `path` (its last 10 s are the context); with
    `include_prompt` the result starts with the prompt as the codec renders it."""
    start = time.perf_counter()
    options = resolve_options(options, overrides)
    if not 0 < seconds <= 600:
        raise SonorantError("--seconds must be between 0 and 600")
    info = audio_info(path)  # only the context is read: a long file costs no memory
    start = max(0.0, info.frames / info.samplerate - MAX_CONTEXT_SECONDS - 1.0)
    wav = load_audio(path, synth.sample_rate, start_seconds=start)[:, -int(MAX_CONTEXT_SECONDS * synth.sample_rate):]
    codes = synth.codec.encode(wav[None].to(synth.device), num_codebooks=synth.lm.num_codebooks)  # [1, K, P]
    if codes.shape[-1] == 0:
        raise SonorantError(f"{path}: too short to continue (less than one codec frame)")
    text, lengths = _no_text(synth)
    cond = Conditioning(text, lengths, prompt=codes, prompt_lengths=torch.tensor([codes.shape[-1]],
                                                                                  device=synth.device))
    frames = max(1, round(seconds * synth.codec.frame_rate))
    generation = Generation(synth.lm, cond, _sampling(options, frames, guided=False), prefix=codes)
    info = SynthesisInfo(mode="continuation")
    state = synth.codec.new_stream(1)  # this call's own decoder state: concurrent calls never share it
    head = synth.codec.decode_step(codes, state)[0, 0].cpu()  # also warms the decoder up on the context
    chunks = [c.samples for c in synth.render(generation, info, options, start, state=state)]
    # Without the prompt, the decoder's lag is the prompt's last hop, still held when generation began.
    samples = torch.cat([head, *chunks]) if include_prompt else torch.cat(chunks)[synth.codec.config.decoder_lag:]
    info.synthesis_s = time.perf_counter() - start
    return Audio(samples.clamp(-1, 1), synth.sample_rate, info)


def caption_stream(synth: Synthesizer, caption: str, seconds: float = 5.0, options: SynthesisOptions | None = None,
                   info: SynthesisInfo | None = None, **overrides) -> Iterator[AudioChunk]:
    """Text-to-sound / text-to-music as it is generated: `seconds` of audio for a caption, with classifier-free
    guidance (`cfg_scale`, 3 unless given), in chunks. Needs an LM trained with captions. Raises before the
    first chunk when the model or the request cannot do it; `info` (optional) collects the timings."""
    options = resolve_options(options, {"cfg_scale": 3.0, **{k: v for k, v in overrides.items() if v is not None}})
    config = synth.lm.config
    if not config.caption_dim:
        raise ModelError("this model was not trained with captions, so it cannot generate from one; use a model "
                         "trained on a captioned corpus (caption_dim in its LM config)")
    if not caption.strip():
        raise SonorantError("the caption is empty")
    if not 0 < seconds <= 600:
        raise SonorantError("--seconds must be between 0 and 600")
    return _caption_chunks(synth, caption, seconds, options, info or SynthesisInfo(mode="caption"))


@torch.no_grad()
def _caption_chunks(synth: Synthesizer, caption: str, seconds: float, options: SynthesisOptions,
                    info: SynthesisInfo) -> Iterator[AudioChunk]:
    start = time.perf_counter()
    embedding = caption_encoder(synth.lm.config.caption_encoder).encode([caption]).to(synth.device)  # [1, D]
    text, lengths = _no_text(synth)
    cond = Conditioning(text, lengths, caption=embedding,
                        has_caption=torch.ones(1, dtype=torch.bool, device=synth.device),
                        beats_per_frame=beats_per_frame([caption], synth.codec.frame_rate).to(synth.device))
    frames = max(1, round(seconds * synth.codec.frame_rate))
    generation = Generation(synth.lm, cond, _sampling(options, frames, guided=True))
    info.mode = "caption"
    yield from synth.render(generation, info, options, start, state=synth.codec.new_stream(1))
    info.synthesis_s = time.perf_counter() - start


def generate_from_caption(synth: Synthesizer, caption: str, seconds: float = 5.0,
                          options: SynthesisOptions | None = None, **overrides) -> Audio:
    """The whole of `caption_stream`'s audio."""
    info = SynthesisInfo(mode="caption")
    chunks = [c.samples for c in caption_stream(synth, caption, seconds, options, info, **overrides)]
    return Audio(torch.cat(chunks) if chunks else torch.zeros(0), synth.sample_rate, info)
