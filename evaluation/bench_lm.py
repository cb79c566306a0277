"""`sonorant bench lm`: the hierarchical LM against a flattened baseline, and cached vs uncached generation.

The flattened baseline is one causal transformer over the T x K tokens of a clip (plus the text), at
the width and depth of the hierarchical model's global transformer: the layout whose cost the
hierarchical split avoids. Every training case runs in a fresh process so its peak memory is its own.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import platform
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..lm import Conditioning, Generation, HierarchicalLM, LMBatch, LMConfig, SamplingConfig
from ..lm.layers import Transformer

TEXT_TOKENS_PER_FRAME = 0.2  # about 10 phonemes per second of speech at 50 frames/s


@dataclass
class TrainCase:
    model: str  # "hierarchical" or "flat"
    frames: int
    codebooks: int
    sequence: int  # positions the (global) transformer attends over
    step_seconds: float  # median forward + backward + optimiser step
    peak_memory_mb: float  # peak allocation of the step (CUDA) or peak RSS growth (CPU)
    error: str | None = None  # e.g. out of memory


@dataclass
class GenerationCase:
    cache: bool
    frames: int
    seconds: float
    frames_per_second: float
    x_realtime: float  # at the codec's 50 frames/s


@dataclass
class LMBench:
    config: str
    parameters: int
    device: str
    threads: int
    batch_size: int
    train: list[TrainCase]
    generation: list[GenerationCase]
    cached_equals_uncached: bool  # the same seed gives the same frames either way
    machine: str


class FlatLM(nn.Module):
    """Baseline: one causal transformer over the text then every token of every frame, in frame order."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.text = nn.Embedding(c.text_vocab_size, c.dim)
        self.tokens = nn.Embedding(c.num_codebooks * c.codebook_size, c.dim)
        self.transformer = Transformer(c.dim, c.num_layers, c.num_heads, c.mlp_ratio, c.dropout, c.rope_base)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)
        self.register_buffer("offsets", torch.arange(c.num_codebooks) * c.codebook_size, persistent=False)

    def forward(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """text [B, L], codes [B, K, T] -> next-token cross-entropy over the T x K audio tokens."""
        b, k, t = codes.shape
        tokens = (codes + self.offsets[:, None]).transpose(1, 2).reshape(b, t * k)
        x = torch.cat([self.text(text), self.tokens(tokens)], dim=1)
        positions = torch.arange(x.shape[1], device=x.device).expand(b, -1)
        h = self.transformer(x, positions)[:, text.shape[1] - 1: -1]
        return F.cross_entropy(self.head(h).flatten(0, 1).float(), codes.transpose(1, 2).reshape(-1))


def synthetic_batch(config: LMConfig, batch_size: int, frames: int, device: torch.device,
                    seed: int = 0) -> LMBatch:
    g = torch.Generator().manual_seed(seed)
    text_len = max(1, round(frames * TEXT_TOKENS_PER_FRAME))
    text = torch.randint(1, config.text_vocab_size, (batch_size, text_len), generator=g)
    codes = torch.randint(0, config.codebook_size, (batch_size, config.num_codebooks, frames), generator=g)
    cond = Conditioning(text, torch.full((batch_size,), text_len))
    pointer = (torch.arange(frames) * text_len // frames).expand(batch_size, -1)  # every token spoken in turn
    return LMBatch(cond, codes, torch.full((batch_size,), frames), pointer).to(device)


def _train_case(config: LMConfig, kind: str, frames: int, batch_size: int, repeats: int, device: str,
                threads: int) -> TrainCase:
    """One training-step measurement; runs inside its own process."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    base_rss = _rss_mb()
    torch.manual_seed(0)
    batch = synthetic_batch(config, batch_size, frames, dev)
    model = (HierarchicalLM(config) if kind == "hierarchical" else FlatLM(config)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    text_len = batch.condition.phonemes.shape[1]
    sequence = 2 + frames if kind == "hierarchical" else text_len + frames * config.num_codebooks
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    try:
        for i in range(repeats + 1):
            start = time.perf_counter()
            with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
                loss = model(batch).loss if kind == "hierarchical" else model(batch.condition.phonemes, batch.codes)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - start)
    except torch.OutOfMemoryError:
        return TrainCase(kind, frames, config.num_codebooks, sequence, float("nan"), float("nan"), "out of memory")
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else _rss_mb() - base_rss)
    return TrainCase(kind, frames, config.num_codebooks, sequence, statistics.median(times), peak)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _uncached_frames(model: HierarchicalLM, cond: Conditioning, sampling: SamplingConfig, frames: int) -> torch.Tensor:
    """Generation without a KV cache: the whole sequence goes through the global transformer per frame."""
    gen = Generation(model, cond, sampling)
    history = torch.full((cond.batch_size, sampling.repetition_window), -1, dtype=torch.long)
    codes = torch.zeros(cond.batch_size, model.num_codebooks, 0, dtype=torch.long)
    out = []
    with torch.no_grad():
        for t in range(frames):
            lengths = torch.full((cond.batch_size,), t)
            seq = model.build_sequence(cond, codes, lengths)
            hidden = model.global_transformer(seq.x, seq.positions)[:, -1]
            frame, _ = gen.next_frame(hidden, history, t)
            history = torch.cat([history[:, 1:], frame[:, :1]], dim=1)
            codes = torch.cat([codes, frame[:, :, None]], dim=-1)
            out.append(frame)
    return torch.stack(out, dim=-1)


def _generation(model: HierarchicalLM, frames: int, cache: bool) -> tuple[GenerationCase, torch.Tensor]:
    cond = synthetic_batch(model.config, 1, frames, torch.device("cpu")).condition
    cond = Conditioning(cond.phonemes, torch.zeros_like(cond.phoneme_lengths))  # no pointer: a fixed length
    # The end decision of an untrained model is random; min_frames makes every run the same length.
    sampling = SamplingConfig(seed=0, top_k=50, max_frames=frames, min_frames=frames)
    start = time.perf_counter()
    if cache:
        with torch.no_grad():
            codes = Generation(model, cond, sampling).run().codes
    else:
        codes = _uncached_frames(model, cond, sampling, frames)
    seconds = time.perf_counter() - start
    fps = frames / seconds
    return GenerationCase(cache, frames, seconds, fps, fps / 50.0), codes


def bench_lm(config: LMConfig, name: str, frames: tuple[int, ...] = (250, 500, 1000), batch_size: int = 1,
             repeats: int = 2, generate_frames: int = 150, device: str = "cpu", threads: int = 0,
             progress=None) -> LMBench:
    """Training step time and memory (hierarchical vs flat) per clip length; generation speed with and
    without the KV cache (on CPU, batch 1)."""
    context = multiprocessing.get_context("spawn")
    train = []
    for t in frames:
        for kind in ("hierarchical", "flat"):
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                train.append(pool.submit(_train_case, config, kind, t, batch_size, repeats, device, threads).result())
            if progress:
                progress(train[-1])
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = HierarchicalLM(config).eval()
    cached, cached_codes = _generation(model, generate_frames, cache=True)
    uncached, uncached_codes = _generation(model, generate_frames, cache=False)
    return LMBench(
        config=name, parameters=sum(p.numel() for p in model.parameters()), device=device,
        threads=threads or torch.get_num_threads(), batch_size=batch_size, train=train,
        generation=[cached, uncached], cached_equals_uncached=torch.equal(cached_codes, uncached_codes),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
    )


def bench_table(result: LMBench) -> str:
    lines = [f"LM bench: {result.config} ({result.parameters / 1e6:.1f} M parameters) on {result.device}, "
             f"{result.threads} threads, batch {result.batch_size}",
             f"{'frames':>6} {'model':>12} {'positions':>9} {'step s':>8} {'memory MB':>9}  flat/hier time"]
    by_key = {(c.frames, c.model): c for c in result.train}
    for c in result.train:
        ratio = ""
        if c.model == "flat" and not c.error:
            hier = by_key.get((c.frames, "hierarchical"))
            ratio = f"  {c.step_seconds / hier.step_seconds:.1f}x" if hier and not hier.error else ""
        step = c.error or f"{c.step_seconds:8.3f}"
        lines.append(f"{c.frames:>6} {c.model:>12} {c.sequence:>9} {step:>8} {c.peak_memory_mb:>9.0f}{ratio}")
    for g in result.generation:
        lines.append(f"generation {'with' if g.cache else 'without'} KV cache: {g.frames} frames in "
                     f"{g.seconds:.2f} s = {g.frames_per_second:.1f} frames/s ({g.x_realtime:.2f}x real time)")
    cached, uncached = result.generation
    lines.append(f"KV cache speed-up {uncached.seconds / cached.seconds:.1f}x; identical frames: "
                 f"{result.cached_equals_uncached}")
    return "\n".join(lines)


def to_json(result: LMBench) -> dict:
    return dataclasses.asdict(result)
