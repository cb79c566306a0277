"""Build the offline corpus from Debian packages only, with its manifest and a report.

- speech: every TTS engine installed (espeak-ng accents and variants, flite, festival voices), optionally
  multiplied into pseudo-speakers; whole base voices held out for the zero-shot test split; plus the
  hedgewars voice packs as held-out real voices.
- music: pieces composed from drawn parameters and rendered with fluidsynth, captioned from those
  parameters, and real recordings from game music packages.
- sound: real effects and drum samples from game and drum-kit packages, captioned from their names.

Every clip is written atomically under a name fixed by the seed, so an interrupted build, run again with
the same arguments, keeps what it had and renders only the rest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import zip_longest
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.atomic import atomic_path, atomic_write
from ..core.errors import SonorantError
from .engines import Voice, available_voices, missing_engines, synthesize
from .manifest import DOMAINS, Item, write_manifest
from .music import Note, Piece, compose, compose_note, draw_note, draw_piece, render, soundfont
from .pseudo import SHIFTS, Embed, VoiceShift, apply_shift, speaker_similarity
from .recordings import MIN_CLIP_SECONDS, SOURCES, import_file, source_files
from .sentences import FORTUNE_DIRS, SOURCE, fortune_sentences
from .timings import WordTime, scaled

# Whole base voices kept out of training, for held-out (zero-shot) evaluation. Festival's SLT is the same
# person as flite's.
HELD_OUT_VOICES = ("flite:slt", "festival:cmu_us_slt_arctic_hts", "espeak-ng:en-gb-scotland+f4",
                   "espeak-ng:de+f4", "espeak-ng:es-419+m3")
REAL_VOICES = "hedgewars:"  # the real human voices, all held out
DOMAIN_SHARES = {"speech": 0.8, "music": 0.15, "sound": 0.05}  # of --hours, over the domains built
GENERATED_MUSIC_SHARE = 0.5  # of the music hours when real recordings are installed; all of them otherwise
NOTE_SHARE = 0.1  # of the generated music hours: single notes (one instrument and pitch per clip)
REPORT_FILE = "report.json"

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class BuildResult:
    manifest: Path
    items: int
    hours: float
    voices: int  # base voices
    sentence_source: str
    speakers: int = 0  # base voices and their pseudo-speakers
    domains: dict[str, float] = field(default_factory=dict)  # hours per domain
    sources: dict[str, float] = field(default_factory=dict)  # hours per engine / package / generator
    skipped: list[str] = field(default_factory=list)  # what was not used, and why
    seconds: float = 0.0  # build time
    # Per checked base voice: speaker-encoder cosines between its speakers (the base voice and its
    # pseudo-speakers; "max_between") and between utterances of one speaker ("min_within").
    speaker_check: dict[str, dict[str, float]] = field(default_factory=dict)


def build_corpus(out: str | Path, hours: float = 1.0, seed: int = 0, workers: int | None = None,
                 progress: Progress | None = None, pseudo_speakers: int = 0, languages: tuple[str, ...] = ("en",),
                 domains: tuple[str, ...] = DOMAINS, embed: Embed | None = None) -> BuildResult:
    """About `hours` of audio shared by `domains` (speech 80 %, music 15 %, sound 5 % of what is built),
    from whatever is installed; what is missing is skipped and listed in the result and `report.json`.
    `embed` (a speaker encoder) checks that pseudo-speakers are new speakers; without it that check is
    skipped."""
    started = time.perf_counter()
    unknown = set(domains) - set(DOMAINS)
    if unknown or not domains:
        raise SonorantError(f"--domain: choose from {', '.join(DOMAINS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    total_share = sum(DOMAIN_SHARES[d] for d in domains)
    target = {d: hours * DOMAIN_SHARES[d] / total_share for d in domains}
    skipped: list[str] = [f"speech engine {e}: not installed" for e in missing_engines()] if "speech" in domains else []
    items: list[Item] = []
    if "speech" in domains:
        items += build_speech(out, target["speech"], seed, workers, progress, pseudo_speakers, languages, skipped)
        items += real_voices(out, seed, skipped)
    if "music" in domains:
        real = recordings(out, "music", target["music"] * (1 - GENERATED_MUSIC_SHARE), skipped, progress)
        generated = max(0.0, target["music"] - sum(i.duration for i in real) / 3600)
        items += real + generated_music(out, generated, seed, workers, skipped, progress)
    if "sound" in domains:
        items += recordings(out, "sound", target["sound"], skipped, progress)
    if not items:
        raise SonorantError("nothing to build: " + "; ".join(skipped))
    manifest = out / "manifest.jsonl"
    write_manifest(manifest, items)
    check = check_pseudo_speakers(out, items, skipped, embed) if pseudo_speakers else {}
    result = summarize(manifest, items, skipped, time.perf_counter() - started, check)
    atomic_write(out / REPORT_FILE, json.dumps({k: str(v) if isinstance(v, Path) else v
                                                for k, v in asdict(result).items()}, indent=1) + "\n")
    return result


def held_out(base_speaker: str | None) -> bool:
    """Whether a base voice belongs to the held-out (test) voices."""
    return base_speaker is not None and (base_speaker in HELD_OUT_VOICES or base_speaker.startswith(REAL_VOICES))


def check_pseudo_speakers(out: Path, items: list[Item], skipped: list[str], embed: Embed | None,
                          voices: int = 6, per_speaker: int = 3) -> dict[str, dict[str, float]]:
    """Speaker-encoder check of the pseudo-speakers of a few base voices: they are new speakers only if
    they are less alike than one speaker's own utterances."""
    if embed is None:
        skipped.append("pseudo-speaker check: no speaker encoder (resemblyzer not installed)")
        return {}
    groups: dict[str, dict[str, list[Path]]] = {}
    for item in items:
        if item.domain == "speech" and item.base_speaker and not item.base_speaker.startswith(REAL_VOICES):
            paths = groups.setdefault(item.base_speaker, {}).setdefault(item.speaker or "", [])
            if len(paths) < per_speaker and item.duration >= 1.5:
                paths.append(out / item.path)
    by_engine = [sorted(b for b in groups if b.split(":")[0] == e) for e in sorted({b.split(":")[0] for b in groups})]
    checked = {}
    for base in [b for turn in zip_longest(*by_engine) for b in turn if b is not None][:voices]:  # engines take turns
        speakers = {k: v for k, v in groups[base].items() if len(v) >= 2}
        if len(speakers) < 2:
            continue
        result = speaker_similarity(speakers, base, embed)
        off = result.cosine[~np.eye(len(result.speakers), dtype=bool)]
        checked[base] = {"speakers": len(result.speakers), "max_between": round(float(off.max()), 3),
                         "mean_between": round(float(off.mean()), 3),
                         "min_within": round(min(result.within.values()), 3)}
    return checked


def summarize(manifest: Path, items: list[Item], skipped: list[str], seconds: float,
              speaker_check: dict[str, dict[str, float]] | None = None) -> BuildResult:
    domains: dict[str, float] = {}
    sources: dict[str, float] = {}
    for item in items:
        domains[item.domain] = domains.get(item.domain, 0.0) + item.duration / 3600
        speech = item.domain == "speech" and item.base_speaker
        name = item.base_speaker.split(":")[0] if speech else item.id.split("/")[0]
        source = f"{name} {item.domain}"  # "festival speech", "generated music", "hydrogen-drumkits sound"
        sources[source] = sources.get(source, 0.0) + item.duration / 3600
    speech = [i for i in items if i.domain == "speech"]
    return BuildResult(manifest=manifest, items=len(items), hours=sum(domains.values()),
                       voices=len({i.base_speaker for i in speech}), sentence_source=SOURCE,
                       speakers=len({i.speaker for i in speech}), domains=domains, sources=sources, skipped=skipped,
                       seconds=seconds, speaker_check=speaker_check or {})


def build_speech(out: Path, hours: float, seed: int, workers: int, progress: Progress | None, pseudo_speakers: int,
                 languages: tuple[str, ...], skipped: list[str]) -> list[Item]:
    """Synthesise about `hours` of speech, split by base voice: held-out voices form the test split.

    With `pseudo_speakers` = n (0..4), every base voice also speaks through n formant/pitch/tempo shifts
    (`pseudo.SHIFTS`), each a speaker of its own with the base voice as `base_speaker`. The hours are
    shared evenly by `languages` (English, and German / Spanish with espeak-ng and the fortunes-de/-es
    sentences).
    """
    if not 0 <= pseudo_speakers <= len(SHIFTS):
        raise SonorantError(f"pseudo_speakers must be between 0 and {len(SHIFTS)}")
    shifts: list[VoiceShift | None] = [None, *SHIFTS[:pseudo_speakers]]
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

    def render(job: tuple[int, Voice, VoiceShift | None, str, int, int]) -> Item | None:
        index, voice, shift, text, rate, pitch = job
        path = out / "wav" / f"{index:06d}.wav"
        timings = path.with_suffix(".words.json")
        try:
            if not path.is_file():  # a resumed build keeps what it rendered
                words = _render_speech(path, voice, shift, text, rate, pitch)
                atomic_write(timings, json.dumps(None if words is None else [w.to_list() for w in words]))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            failed.append(voice.id)  # an engine that fails on one sentence: counted, reported
            return None
        info = sf.info(str(path))
        words = json.loads(timings.read_text()) if timings.is_file() else None

        split = "test" if voice.id in HELD_OUT_VOICES else ("valid" if index % 50 == 49 else "train")
        return Item(id=f"{index:06d}", path=f"wav/{path.name}", duration=round(info.duration, 4),
                    sample_rate=info.samplerate, domain="speech", split=split, text=text,
                    language=voice.language, speaker=voice.id if shift is None else f"{voice.id}#{shift.id}",
                    base_speaker=voice.id, words=None if words is None else tuple(tuple(w) for w in words))

    failed: list[str] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for item in pool.map(render, plan):
            if item is None:
                continue
            if all(t >= share for t in totals.values()):
                break
            if totals[item.language] >= share:
                (out / item.path).unlink()
                continue
            items.append(item)
            totals[item.language] += item.duration
            if progress:
                progress("speech", min(sum(min(t, share) for t in totals.values()) / target, 1.0))
    kept = {item.path for item in items}
    for index, *_ in plan:  # clips rendered ahead of the stop
        if f"wav/{index:06d}.wav" not in kept:
            (out / "wav" / f"{index:06d}.wav").unlink(missing_ok=True)
            (out / "wav" / f"{index:06d}.words.json").unlink(missing_ok=True)
    if failed:
        skipped.append(f"speech: {len(failed)} clips the engine failed to render ({', '.join(sorted(set(failed)))})")
    return items


def _render_speech(path: Path, voice: Voice, shift: VoiceShift | None, text: str, rate: int,
                   pitch: int) -> list[WordTime] | None:
    """Render one clip; returns the engine's word timings (on the shifted time axis for a pseudo-speaker)."""
    with atomic_path(path, suffix=".wav") as tmp:
        if shift is None:
            return synthesize(voice, text, Path(tmp), rate_wpm=rate, pitch=pitch)
        raw = Path(tmp).with_suffix(".raw.wav")
        try:
            words = synthesize(voice, text, raw, rate_wpm=rate, pitch=pitch)
            apply_shift(raw, Path(tmp), shift, sf.info(str(raw)).samplerate)
        finally:
            raw.unlink(missing_ok=True)
        return scaled(words, 1 / shift.tempo)


def real_voices(out: Path, seed: int, skipped: list[str]) -> list[Item]:
    """The hedgewars voice packs, held out (test split), when hedgewars-data is installed."""
    from .hedgewars import DEFAULT_SOURCE, import_hedgewars

    if not DEFAULT_SOURCE.is_dir():
        skipped.append("real voices: hedgewars-data not installed")
        return []
    return import_hedgewars(DEFAULT_SOURCE, out, seed).items


def recordings(out: Path, domain: str, hours: float, skipped: list[str], progress: Progress | None) -> list[Item]:
    """Clips of the installed packages' recordings of `domain`, sources taking turns file by file, until
    `hours`."""
    pools = []
    for source in (s for s in SOURCES if s.domain == domain):
        files = source_files(source)
        if files is None:
            skipped.append(f"{domain}: {source.package} not installed")
        elif files:
            pools.append([(source, f) for f in files])
    if not pools:
        return []
    items: list[Item] = []
    seconds, unusable = 0.0, 0
    for pair in (p for group in zip_longest(*pools) for p in group if p is not None):
        if seconds >= hours * 3600:
            break
        source, path = pair
        stem = f"{source.package}/{path.stem}"
        clips = import_file(source, path, out, stem, max_seconds=hours * 3600 - seconds)
        unusable += not clips
        items += clips
        seconds += sum(c.duration for c in clips)
        if progress:
            progress(domain, min(seconds / max(hours * 3600, 1e-9), 1.0))
    if unusable:
        skipped.append(f"{domain}: {unusable} recordings unreadable, silent or shorter than {MIN_CLIP_SECONDS} s")
    return items


def generated_music(out: Path, hours: float, seed: int, workers: int, skipped: list[str],
                    progress: Progress | None) -> list[Item]:
    """Composed pieces and single notes (`NOTE_SHARE` of the time) rendered with fluidsynth, until `hours`;
    split by clip."""
    if hours <= 0:
        return []
    font = soundfont()
    if font is None or shutil.which("fluidsynth") is None:
        skipped.append("generated music: needs fluidsynth and a GM soundfont (apt-get install fluidsynth "
                       "timgm6mb-soundfont)")
        return []
    clips: list[tuple[str, Piece | Note]] = []
    for name, draw, share in (("generated", draw_piece, 1 - NOTE_SHARE), ("note", draw_note, NOTE_SHARE)):
        rng = random.Random(seed + (1 if name == "generated" else 2))
        planned, index = 0.0, 0
        while planned < share * hours * 3600:
            clip = draw(rng)
            clips.append((f"{name}-{index:05d}", clip))
            planned += clip.seconds if isinstance(clip, Piece) else clip.held + 0.5
            index += 1
    (out / "music").mkdir(parents=True, exist_ok=True)

    def one(job: tuple[str, Piece | Note]) -> Item:
        name, clip = job
        path = out / "music" / f"{name}.flac"
        if not path.is_file():
            midi = out / "music" / f".{name}.mid"
            (compose(clip) if isinstance(clip, Piece) else compose_note(clip)).save(str(midi))
            try:
                with atomic_path(path, suffix=".wav") as tmp:
                    render(midi, Path(tmp), font=font)
                    audio, rate = sf.read(tmp, dtype="float32", always_2d=True)
                    sf.write(tmp, trim_tail(audio.mean(axis=1), rate), rate, format="FLAC")
            finally:
                midi.unlink(missing_ok=True)
        info = sf.info(str(path))
        index = int(name.rsplit("-", 1)[1])
        split = "test" if index % 25 == 24 else ("valid" if index % 25 == 23 else "train")
        return Item(id=name.replace("-", "/"), path=f"music/{path.name}", duration=round(info.duration, 4),
                    sample_rate=info.samplerate, domain="music", split=split, caption=clip.caption)

    items = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for n, item in enumerate(pool.map(one, clips), 1):
            items.append(item)
            if progress:
                progress("music", n / len(clips))
    return items


def trim_tail(audio: np.ndarray, rate: int, floor_db: float = -60.0) -> np.ndarray:
    """Cut the silent end of a render (the synthesiser's release), keeping 0.2 s after the last sound."""
    level = 10 ** (floor_db / 20) * max(float(np.abs(audio).max()), 1e-9)
    loud = np.flatnonzero(np.abs(audio) > level)
    end = min(len(audio), (int(loud[-1]) if len(loud) else 0) + int(0.2 * rate))
    return audio[:max(end, 1)]

