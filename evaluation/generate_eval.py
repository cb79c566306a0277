"""`sonorant eval generate`: does audio generated from a caption do what the caption says?

The corpus' generated music states exactly what was drawn (instrument, key and mode, tempo, style, drums),
so adherence can be checked objectively. Held-out captions are drawn like the corpus' but with
(instrument, key, mode, style, drums) combinations that no training caption has; single-note captions
("a soft flute note, C5") likewise; sound captions come from the corpus' test split. Every clip is
described by the same estimators (`music_attributes.py`, `music_tagger.py`) and compared with its
caption, next to two baselines: the ground-truth renders of the same captions (the ceiling: what the
estimators get right on audio that obeys the caption) and the generations judged against shuffled
captions (the floor: what agreement chance gives).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..core.errors import SonorantError
from ..data.manifest import Item, read_manifest
from ..data.music import (
    Note,
    Piece,
    caption_facts,
    draw_note,
    draw_piece,
    piece_facts,
)
from .music_attributes import Key, estimate_key, estimate_pitch, estimate_tempo, key_score, pitch_agrees, tempo_agrees
from .music_tagger import RATE, MusicTagger, features, render_clip

SHUFFLE_SEED = 7


@dataclass
class Description:
    """What the estimators hear in one clip."""

    tempo: float
    key: Key
    pitch: float | None  # MIDI (single notes only)
    tags: dict[str, str]  # the tagger's heads
    mel: list[float]  # mean log-mel bands, for the Fréchet distance

    @classmethod
    def of(cls, audio: np.ndarray, rate: int, tagger: MusicTagger, pitch: bool = False) -> Description:
        x = features(audio, rate)
        return cls(estimate_tempo(audio, rate), estimate_key(audio, rate),
                   estimate_pitch(audio, rate) if pitch else None, tagger.tag(x), x[:64].tolist())


@dataclass
class Agreement:
    """Per attribute, the share of captions a system's clips agree with (key: MIREX's weighted score)."""

    system: str
    pieces: int
    tempo: float | None
    key: float | None
    key_exact: float | None
    mode: float | None
    drums: float | None
    drums_heard: float | None  # the share of clips the tagger calls drums, whatever their caption says
    family: float | None
    notes: int
    pitch: float | None
    note_family: float | None


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def agreement(system: str, pieces: Sequence[Piece], described: Sequence[Description], notes: Sequence[Note],
              noted: Sequence[Description]) -> Agreement:
    keys = [(d.key, Key(p.tonic, p.mode)) for p, d in zip(pieces, described, strict=True)]
    return Agreement(
        system, len(pieces),
        tempo=_mean([tempo_agrees(d.tempo, p.tempo) for p, d in zip(pieces, described, strict=True)]),
        key=_mean([key_score(e, s) for e, s in keys]), key_exact=_mean([e == s for e, s in keys]),
        mode=_mean([e.mode == s.mode for e, s in keys]),
        drums=_mean([(d.tags["drums"] == "yes") == p.drums for p, d in zip(pieces, described, strict=True)]),
        drums_heard=_mean([d.tags["drums"] == "yes" for d in described]),
        family=_mean([d.tags["family"] == p.family for p, d in zip(pieces, described, strict=True)]),
        notes=len(notes), pitch=_mean([pitch_agrees(d.pitch, n.pitch) for n, d in zip(notes, noted, strict=True)]),
        note_family=_mean([d.tags["family"] == n.family for n, d in zip(notes, noted, strict=True)]))


def derangement(n: int, seed: int = SHUFFLE_SEED) -> list[int]:
    """A permutation of range(n) that moves every index (n > 1): each clip is judged by another's caption."""
    if n < 2:
        return list(range(n))
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        if all(i != j for i, j in enumerate(order)):
            return order


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and `b` (FAD's formula, on mean log-mel
    bands instead of a pretrained embedding)."""
    import scipy.linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    return max(0.0, float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)))  # >= 0 but for rounding


def training_facts(items: Sequence[Item]) -> tuple[set, set[str]]:
    """The piece facts and the note captions of the training split: what a held-out caption must avoid."""
    train = [i.caption for i in items if i.split == "train" and i.caption]
    return {f for f in map(caption_facts, train) if f is not None}, set(train)


def held_out_pieces(items: Sequence[Item], count: int, seconds: float, seed: int) -> list[Piece]:
    """`count` pieces of about `seconds`, drawn like the corpus', whose facts no training caption has."""
    seen, _ = training_facts(items)
    rng, pieces = random.Random(10_000 + seed), []
    for _ in range(100 * count):
        piece = draw_piece(rng, seconds=(seconds, seconds))
        if piece_facts(piece) not in seen and piece_facts(piece) not in map(piece_facts, pieces):
            pieces.append(piece)
        if len(pieces) == count:
            return pieces
    raise SonorantError("could not draw enough held-out captions: the training captions cover them")


def held_out_notes(items: Sequence[Item], count: int, seed: int) -> list[Note]:
    _, seen = training_facts(items)
    rng, notes = random.Random(20_000 + seed), []
    while len(notes) < count:
        note = draw_note(rng)
        if note.caption not in seen and note.caption not in {n.caption for n in notes}:
            notes.append(note)
    return notes


def sound_cases(items: Sequence[Item], count: int, seed: int) -> list[Item]:
    """Up to `count` sound items of the test split with captions (the recordings are their ground truth)."""
    sounds = sorted((i for i in items if i.domain == "sound" and i.split == "test" and i.caption), key=lambda i: i.id)
    random.Random(seed).shuffle(sounds)
    return sounds[:count]


def domain_examples(items: Sequence[Item], root: Path, per_domain: int, seed: int,
                    progress: Callable[[], None] | None = None) -> list[tuple[np.ndarray, str]]:
    """(features, domain) of up to `per_domain` training items of each domain, for the tagger's domain head."""
    from ..core.audio import load_audio

    rng, examples = random.Random(seed), []
    for domain in sorted({i.domain for i in items}):
        chosen = [i for i in items if i.domain == domain and i.split == "train"]
        rng.shuffle(chosen)
        for item in chosen[:per_domain]:
            audio = load_audio(root / item.path, RATE).mean(dim=0).numpy()
            examples.append((features(audio, RATE), domain))
            if progress:
                progress()
    return examples


@dataclass
class GenerateEvaluation:
    agreements: list[Agreement]
    frechet: dict[str, float]  # generated vs renders, and a second set of renders vs renders (the reference)
    sounds: dict[str, float | int | None]  # share tagged as sound: generations and their recordings
    tagger_accuracy: dict[str, float]
    domains: list[str]  # what the tagger's domain head knows
    rtf: float | None
    examples: list[tuple[str, np.ndarray, np.ndarray]]  # (caption, generation, render) for the figure


def evaluate_generation(generate: Callable[[str, float, int], np.ndarray] | None, tagger: MusicTagger,
                        items: Sequence[Item], root: Path, pieces: int = 30, notes: int = 10, sounds: int = 10,
                        seconds: float = 8.0, seed: int = 0, keep: Path | None = None,
                        progress: Callable[[], None] | None = None,
                        through_codec: Callable[[np.ndarray], np.ndarray] | None = None) -> GenerateEvaluation:
    """Generate (`generate(caption, seconds, seed)` -> mono audio at `RATE`) for held-out captions and score
    every attribute against both baselines. `items` (with `root`, the manifest's folder) are the corpus the
    model was trained on. Without `generate`, the ground truth stands in for the generations (renders,
    recordings): a check of the estimators, whose "generated" row must equal the ceiling. With
    `through_codec` (audio -> the same audio through the model's codec), the renders through the codec are
    scored too: the ceiling of a model that speaks through that codec."""
    import time

    import soundfile as sf

    chosen_pieces = held_out_pieces(items, pieces, seconds, seed)
    chosen_notes = held_out_notes(items, notes, seed)
    chosen_sounds = sound_cases(items, sounds, seed)
    tick = progress or (lambda: None)
    described: dict[str, list[Description]] = {"generated": [], "renders": [], "generated notes": [],
                                               "rendered notes": [], "codec": [], "codec notes": []}
    examples, spent, made = [], 0.0, 0.0
    if keep and generate is not None:
        keep.mkdir(parents=True, exist_ok=True)
    name = "generated" if generate is not None else "ground truth as generated (self-check)"

    def make(caption: str, length: float, index: int, name: str, truth: np.ndarray) -> np.ndarray:
        nonlocal spent, made
        if generate is None:
            return truth
        start = time.perf_counter()
        audio = generate(caption, length, seed + index)
        spent, made = spent + time.perf_counter() - start, made + len(audio) / RATE
        if keep:
            sf.write(keep / f"{name}-{index:03d}.wav", audio, RATE)
        return audio

    for i, piece in enumerate(chosen_pieces):
        truth = render_clip(piece, seconds)
        generated = make(piece.caption, seconds, i, "piece", truth)
        described["generated"].append(Description.of(generated, RATE, tagger))
        described["renders"].append(Description.of(truth, RATE, tagger))
        if through_codec is not None:
            described["codec"].append(Description.of(through_codec(truth), RATE, tagger))
        if len(examples) < 3:
            examples.append((piece.caption, generated, truth))
        tick()
    for i, note in enumerate(chosen_notes):
        truth = render_clip(note)
        generated = make(note.caption, note.held + 1.0, i, "note", truth)
        described["generated notes"].append(Description.of(generated, RATE, tagger, pitch=True))
        described["rendered notes"].append(Description.of(truth, RATE, tagger, pitch=True))
        if through_codec is not None:
            described["codec notes"].append(Description.of(through_codec(truth), RATE, tagger, pitch=True))
        tick()
    order_p, order_n = derangement(len(chosen_pieces)), derangement(len(chosen_notes))
    agreements = [
        agreement("ground-truth renders (ceiling)", chosen_pieces, described["renders"], chosen_notes,
                  described["rendered notes"]),
        *([agreement("renders through the codec (its ceiling)", chosen_pieces, described["codec"], chosen_notes,
                     described["codec notes"])] if through_codec is not None else []),
        agreement(name, chosen_pieces, described["generated"], chosen_notes, described["generated notes"]),
        agreement(f"{name}, captions shuffled (floor)", [chosen_pieces[j] for j in order_p], described["generated"],
                  [chosen_notes[j] for j in order_n], described["generated notes"])]
    # A second set of renders from the same distribution: how far two samples of real renders are apart.
    others = [render_clip(p, seconds) for p in held_out_pieces(items, pieces, seconds, seed + 1)]
    mel = {k: np.array([d.mel for d in described[k]]) for k in ("generated", "renders")}
    other_mel = np.array([features(a, RATE)[:64] for a in others])
    frechet = {f"{name} vs renders": frechet_distance(mel["generated"], mel["renders"]),
               "other renders vs renders (reference)": frechet_distance(other_mel, mel["renders"])}
    sound_result: dict[str, float | int | None] = {"captions": len(chosen_sounds), "generated": None,
                                                   "recordings": None}
    if chosen_sounds and "domain" in tagger.heads:
        from ..core.audio import load_audio

        tags_generated, tags_real = [], []
        for i, item in enumerate(chosen_sounds):
            real = load_audio(root / item.path, RATE).mean(dim=0).numpy()
            generated = make(item.caption, min(max(item.duration, 1.0), seconds), i, "sound", real)
            tags_generated.append(tagger.tag(features(generated, RATE))["domain"])
            tags_real.append(tagger.tag(features(real, RATE))["domain"])
            tick()
        sound_result["generated"] = _mean([t == "sound" for t in tags_generated])
        sound_result["recordings"] = _mean([t == "sound" for t in tags_real])
        sound_result["generated_as_music"] = _mean([t == "music" for t in tags_generated])
        sound_result["generated_as_speech"] = _mean([t == "speech" for t in tags_generated])
    domains = tagger.heads["domain"].classes if "domain" in tagger.heads else []
    return GenerateEvaluation(agreements, frechet, sound_result, tagger.accuracy, domains,
                              spent / made if made else None, examples)


def generate_table(data: dict) -> list[str]:
    """Markdown tables of an evaluation's metrics.json."""
    def f(value, spec=".0%"):
        return "-" if value is None else format(value, spec)
    lines = ["| system | captions | tempo within 10 % | key (MIREX) | key exact | mode | drums | drums heard | "
             "instrument family | notes | pitch within 1/2 tone | note family |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in data["agreements"]:
        lines.append(f"| {a['system']} | {a['pieces']} | {f(a['tempo'])} | {f(a['key'], '.2f')} | "
                     f"{f(a['key_exact'])} | {f(a['mode'])} | {f(a['drums'])} | {f(a.get('drums_heard'))} | "
                     f"{f(a['family'])} | {a['notes']} | {f(a['pitch'])} | {f(a['note_family'])} |")
    fr = data["frechet"]
    lines += ["", "Fréchet distance of mean log-mel bands (lower is closer to the renders): "
              + "; ".join(f"{k} {v:.1f}" for k, v in fr.items()) + "."]
    s = data["sounds"]
    if s.get("generated") is not None:
        lines += ["", f"Sound captions ({s['captions']}, test split): tagged as sound {f(s['generated'])} of the "
                      f"generations (as music {f(s.get('generated_as_music'))}, as speech "
                      f"{f(s.get('generated_as_speech'))}); {f(s['recordings'])} of their recordings."]
    acc = ", ".join(f"{k} {v:.0%}" for k, v in data["tagger_accuracy"].items())
    lines += ["", f"Tagger accuracy on examples it was not trained on: {acc} (domains: "
                  f"{', '.join(data['domains']) or 'none'})."]
    if data.get("rtf") is not None:
        lines.append(f"Generation real-time factor: {data['rtf']:.2f}.")
    return lines


def write_generate_report(result: GenerateEvaluation, folder: Path, meta: dict) -> Path:
    """metrics.json, report.md and, with matplotlib, spectrograms.png (generations beside their renders)."""
    from .plots import MISSING, plots_available, spectrograms

    folder.mkdir(parents=True, exist_ok=True)
    data = {**meta, "agreements": [asdict(a) for a in result.agreements], "frechet": result.frechet,
            "sounds": result.sounds, "tagger_accuracy": result.tagger_accuracy, "domains": result.domains,
            "rtf": result.rtf}
    (folder / "metrics.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = generate_table(data)
    if result.examples and plots_available():
        panels = [(f"{title}: {caption}", audio, RATE) for caption, generated, truth in result.examples
                  for title, audio in (("generated", generated), ("render", truth))]
        spectrograms(panels, folder / "spectrograms.png")
        lines += ["", "![generations beside the renders of their captions](spectrograms.png)"]
    elif result.examples:
        lines += ["", MISSING]
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    return folder


def read_items(manifests: Sequence[Path]) -> tuple[list[Item], Path]:
    """The items of every manifest, their paths made relative to the first manifest's folder."""
    if not manifests:
        raise SonorantError("give at least one --manifest")
    root = manifests[0].parent
    items = []
    for manifest in manifests:
        for item in read_manifest(manifest):
            path = manifest.parent / item.path
            items.append(replace(item, path=str(path.resolve())) if manifest.parent != root else item)
    return items, root
