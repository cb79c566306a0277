"""Build an offline speech corpus from the TTS engines installed here, with its manifest."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import soundfile as sf

from ..codec.errors import SonorantError
from .engines import Voice, available_voices, synthesize
from .manifest import Item, write_manifest
from .pseudo import SHIFTS, VoiceShift, apply_shift
from .sentences import FORTUNE_DIRS, SOURCE, fortune_sentences

# Whole base voices kept out of training, for held-out (zero-shot) evaluation.
HELD_OUT_VOICES = ("flite:slt", "espeak-ng:en-gb-scotland+f4", "espeak-ng:de+f4", "espeak-ng:es-419+m3")


@dataclass(frozen=True)
class BuildResult:
    manifest: Path
    items: int
    hours: float
    voices: int  # base voices
    sentence_source: str
    speakers: int = 0  # base voices and their pseudo-speakers


def build_speech_corpus(out: str | Path, hours: float = 1.0, seed: int = 0, workers: int = 2,
                        progress: Callable[[float], None] | None = None, pseudo_speakers: int = 0,
                        languages: tuple[str, ...] = ("en",)) -> BuildResult:
    """Synthesise about `hours` of speech, split by base voice: held-out voices form the test split.

    With `pseudo_speakers` = n (0..4), every base voice also speaks through n formant/pitch/tempo shifts
    (`pseudo.SHIFTS`), each a speaker of its own with the base voice as `base_speaker`. The hours are
    shared evenly by `languages` (English, and German / Spanish with espeak-ng and the fortunes-de/-es
    sentences).
    """
    if not 0 <= pseudo_speakers <= len(SHIFTS):
        raise SonorantError(f"pseudo_speakers must be between 0 and {len(SHIFTS)}")
    shifts: list[VoiceShift | None] = [None, *SHIFTS[:pseudo_speakers]]
    out = Path(out)
    rng = random.Random(seed)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    target = hours * 3600.0
    plans: list[list] = []
    for language in languages:
        if language not in FORTUNE_DIRS:
            raise SonorantError(f"--language {language!r}: choose from {', '.join(FORTUNE_DIRS)}")
        voices = available_voices(language)
        if not voices:
            raise SonorantError(f"no speech engine for {language!r}: install espeak-ng and flite "
                                "(apt-get install espeak-ng flite)")
        sentences = fortune_sentences(language=language)
        if len(sentences) < 100:
            package = FORTUNE_DIRS[language][1]
            raise SonorantError(f"too few {language!r} sentences: install the fortunes (apt-get install {package})")
        # Engines take turns, so the few natural-sounding flite voices are not drowned by espeak variants.
        by_engine = [[v for v in voices if v.engine == e] for e in sorted({v.engine for v in voices})]
        # About 3.5 s per sentence; rendering stops once the language's share of the target is reached.
        plans.append([])
        for i in range(int(target / len(languages) / 3.0) + len(voices)):
            pool = by_engine[i % len(by_engine)]
            voice = pool[(i // len(by_engine)) % len(pool)]
            shift = shifts[(i // (len(by_engine) * len(pool))) % len(shifts)]  # the voice's n-th turn
            plans[-1].append((voice, shift, rng.choice(sentences), rng.randint(130, 200), rng.randint(30, 70)))
    # Languages take turns too, so each reaches its share at about the same time.
    interleaved = [job for jobs in zip_longest(*plans) for job in jobs if job is not None]
    plan = [(index, *job) for index, job in enumerate(interleaved)]
    share = target / len(languages)
    items: list[Item] = []
    totals = dict.fromkeys(languages, 0.0)

    def render(job: tuple[int, Voice, VoiceShift | None, str, int, int]) -> Item:
        index, voice, shift, text, rate, pitch = job
        path = out / "wav" / f"{index:06d}.wav"
        if shift is None:
            synthesize(voice, text, path, rate_wpm=rate, pitch=pitch)
        else:
            raw = out / "wav" / f".{index:06d}.raw.wav"
            synthesize(voice, text, raw, rate_wpm=rate, pitch=pitch)
            apply_shift(raw, path, shift, sf.info(str(raw)).samplerate)
            raw.unlink()
        info = sf.info(str(path))
        split = "test" if voice.id in HELD_OUT_VOICES else ("valid" if index % 50 == 49 else "train")
        return Item(id=f"{index:06d}", path=f"wav/{path.name}", duration=round(info.duration, 4),
                    sample_rate=info.samplerate, domain="speech", split=split, text=text,
                    language=voice.language, speaker=voice.id if shift is None else f"{voice.id}#{shift.id}",
                    base_speaker=voice.id)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for item in pool.map(render, plan):
            if all(t >= share for t in totals.values()):
                break
            if totals[item.language] >= share:
                (out / item.path).unlink()
                continue
            items.append(item)
            totals[item.language] += item.duration
            if progress:
                progress(min(sum(min(t, share) for t in totals.values()) / target, 1.0))
    total = sum(totals.values())
    kept = {item.path for item in items}
    for index, *_ in plan:  # clips rendered ahead of the stop
        if f"wav/{index:06d}.wav" not in kept:
            (out / "wav" / f"{index:06d}.wav").unlink(missing_ok=True)
    manifest = out / "manifest.jsonl"
    write_manifest(manifest, items)
    return BuildResult(manifest=manifest, items=len(items), hours=total / 3600.0,
                       voices=len({i.base_speaker for i in items}), sentence_source=SOURCE,
                       speakers=len({i.speaker for i in items}))
