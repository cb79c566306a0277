"""`sonorant bench tts`: real-time factor and first-audio latency of the whole pipeline, models loaded.

Latency is timed from the `stream()` call to the first audio chunk; the real-time factor is the
synthesis time over the audio's duration; with `repeats` the sentences are spoken that many times (same
seeds, same audio) and the figures are medians over the runs, since a shared CPU's speed wanders by a fifth
between minutes. The baseline in the same run is the same text rendered with
`synthesize()` (everything generated, then returned): the time a non-streaming tool makes you wait.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field

import torch

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
]  # Harvard sentences (IEEE 1969), the field's standard test list


@dataclass
class TTSBench:
    device: str
    threads: int
    cpu: str
    mode: str
    weights: str  # the LM's: "int8" (CPU default) or "float32"
    sentences: int
    audio_seconds: float
    synthesis_seconds: float
    real_time_factor: float  # synthesis / audio (below 1: faster than real time); median over the runs
    first_audio_median_s: float  # stream(): call -> first chunk
    first_audio_max_s: float
    full_wait_median_s: float  # synthesize(): call -> all audio (baseline)
    frames_per_second: float  # LM frames (50/s of audio) made per second, decode included
    stopped: int  # sentences the model ended by itself
    per_sentence: list[dict] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)  # each run's real-time factor, in order


def bench_tts(synth, voice=None, voice_text: str | None = None, seed: int = 0, sentences: list[str] | None = None,
              warmup: bool = True, repeats: int = 1) -> TTSBench:
    from ..tts.synthesizer import SynthesisInfo

    sentences = sentences or SENTENCES
    if warmup:  # first call pays for G2P start-up and the voice prompt's encoding
        synth.synthesize(sentences[0], voice=voice, voice_text=voice_text, seed=seed, max_seconds=1.0)
    rows: list[dict] = []
    runs: list[float] = []
    mode = "none"
    for run in range(repeats):
        run_audio = run_time = 0.0
        for i, text in enumerate(sentences):
            info = SynthesisInfo(mode="none")
            start = time.perf_counter()
            samples = sum(c.samples.numel() for c in synth.stream(text, voice=voice, voice_text=voice_text,
                                                                  seed=seed + i, info=info))
            elapsed = time.perf_counter() - start
            seconds = samples / synth.sample_rate
            mode = info.mode
            run_audio, run_time = run_audio + seconds, run_time + elapsed
            if run == 0:
                start = time.perf_counter()
                synth.synthesize(text, voice=voice, voice_text=voice_text, seed=seed + i)
                full = time.perf_counter() - start
                rows.append({"text": text, "audio_s": seconds, "synthesis_s": [elapsed],
                             "first_audio_s": [info.first_audio_s], "full_wait_s": full, "frames": info.frames,
                             "ended": all(info.ended)})
            else:
                rows[i]["synthesis_s"].append(elapsed)
                rows[i]["first_audio_s"].append(info.first_audio_s)
        runs.append(run_time / max(run_audio, 1e-9))
    for row in rows:  # each sentence's medians over the runs
        row["synthesis_s"] = statistics.median(row["synthesis_s"])
        row["first_audio_s"] = statistics.median(f for f in row["first_audio_s"] if f is not None)
    total_audio = sum(r["audio_s"] for r in rows)
    total_time = sum(r["synthesis_s"] for r in rows)
    firsts = [r["first_audio_s"] for r in rows]
    return TTSBench(device=str(synth.device), threads=torch.get_num_threads(), cpu=platform.processor() or
                    platform.machine(), mode=mode, weights=synth.lm.weights, sentences=len(rows),
                    audio_seconds=total_audio, synthesis_seconds=total_time,
                    real_time_factor=statistics.median(runs),
                    first_audio_median_s=statistics.median(firsts), first_audio_max_s=max(firsts),
                    full_wait_median_s=statistics.median(r["full_wait_s"] for r in rows),
                    frames_per_second=sum(r["frames"] for r in rows) / max(total_time, 1e-9),
                    stopped=sum(r["ended"] for r in rows), per_sentence=rows, runs=runs)
