"""Real human voices from the Debian package `hedgewars-data`: held-out speakers for zero-shot tests.

Each voice pack (`Data/Sounds/voices/PACK/`) is one speaker saying the game's lines, one ~1 s clip per
line, the line being the file name ("Comeonthen.ogg" = "Come on then!"). The English packs are imported
as test items (never training data) with the transcripts below; because a voice prompt needs 3-10 s,
several lines of a pack are also joined (0.25 s apart) into longer clips with the joined transcript.
Shouts and grunts without words (Ow1, Jump2, Laugh...) are left out. Packs in other languages
(Default_es, Default_pl, ...) say translations the file names do not give, so they are skipped.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.atomic import atomic_path
from .importers import CorpusError, ImportResult
from .manifest import Item

DEFAULT_SOURCE = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
SAMPLE_RATE = 16000
GAP_SECONDS = 0.25
JOIN_SECONDS = (4.0, 9.0)
NON_ENGLISH_SUFFIXES = ("_es", "_pl", "_ru", "_uk", "_de", "_fr", "_it", "_pt")

LINES = {
    "Amazing": "Amazing!", "Boring": "Boring!", "Brilliant": "Brilliant!", "Bugger": "Bugger!",
    "Byebye": "Bye bye!", "Comeonthen": "Come on then!", "Coward": "Coward!", "Cutitout": "Cut it out!",
    "Drat": "Drat!", "Enemydown": "Enemy down!", "Excellent": "Excellent!", "Fire": "Fire!",
    "Firstblood": "First blood!", "Flawless": "Flawless!", "Flyaway": "Fly away!", "Gonnagetyou": "Gonna get you!",
    "Grenade": "Grenade!", "Hello": "Hello!", "Hurry": "Hurry!", "Illgetyou": "I'll get you!",
    "Incoming": "Incoming!", "Justyouwait": "Just you wait!", "Kamikaze": "Kamikaze!",
    "Leavemealone": "Leave me alone!", "Melon": "Melon!", "Missed": "Missed!", "Nutter": "Nutter!",
    "Ohdear": "Oh dear!", "Oops": "Oops!", "Ouch": "Ouch!", "Reinforcements": "Reinforcements!",
    "Revenge": "Revenge!", "Runaway": "Run away!", "Sameteam": "Same team!", "Solong": "So long!",
    "Stupid": "Stupid!", "Takecover": "Take cover!", "Thisoneismine": "This one's mine!", "Traitor": "Traitor!",
    "Uh-oh": "Uh-oh!", "Victory": "Victory!", "Watchit": "Watch it!", "Watchthis": "Watch this!",
    "Whatthe": "What the...", "Yessir": "Yes sir!", "Youllregretthat": "You'll regret that!",
}


def _read(path: Path) -> np.ndarray:
    import torch

    from ..core.audio import load_audio

    return load_audio(path, SAMPLE_RATE)[0].to(torch.float32).numpy()


def import_hedgewars(src: str | Path = DEFAULT_SOURCE, out_dir: str | Path = ".", seed: int = 0) -> ImportResult:
    """Line items (paths into `src`) and joined 4-9 s clips (written to `out_dir/hedgewars/`), split test."""
    src, out_dir = Path(src), Path(out_dir)
    if not src.is_dir():
        raise CorpusError(f"{src}: no such folder (apt-get install hedgewars-data)")
    packs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.endswith(NON_ENGLISH_SUFFIXES))
    rng = random.Random(seed)
    items: list[Item] = []
    skipped = {"line without words": 0, "unreadable audio": 0}
    for pack in packs:
        speaker = f"hedgewars:{pack.name}"
        lines: list[tuple[str, np.ndarray]] = []
        for path in sorted(pack.glob("*.ogg")):
            text = LINES.get(path.stem)
            if text is None:
                skipped["line without words"] += 1
                continue
            try:
                info = sf.info(str(path))
                audio = _read(path)
            except Exception:  # a damaged file in a package: skip it, count it
                skipped["unreadable audio"] += 1
                continue
            relative = Path(os.path.relpath(path.absolute(), out_dir.absolute())).as_posix()
            items.append(Item(id=f"{pack.name}/{path.stem}", path=relative, duration=info.duration,
                              sample_rate=info.samplerate, domain="speech", split="test", text=text, language="en",
                              speaker=speaker, base_speaker=speaker))
            lines.append((text, audio))
        items.extend(_joined(lines, pack.name, speaker, out_dir, rng))
    if not items:
        raise CorpusError(f"{src}: no English hedgewars voice lines found")
    return ImportResult(items=items, skipped={k: v for k, v in skipped.items() if v},
                        speakers=len({i.speaker for i in items}), hours=sum(i.duration for i in items) / 3600)


def _joined(lines: list[tuple[str, np.ndarray]], pack: str, speaker: str, out_dir: Path,
            rng: random.Random) -> list[Item]:
    """Consecutive runs of shuffled lines, joined until they last JOIN_SECONDS[0]..[1]."""
    order = lines[:]
    rng.shuffle(order)
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    folder = out_dir / "hedgewars" / pack
    items, texts, parts, seconds = [], [], [], 0.0
    for text, audio in order:
        length = len(audio) / SAMPLE_RATE
        if seconds + length > JOIN_SECONDS[1]:
            texts, parts, seconds = [], [], 0.0
        texts.append(text)
        parts.extend([audio, gap])
        seconds += length + GAP_SECONDS
        if seconds >= JOIN_SECONDS[0]:
            folder.mkdir(parents=True, exist_ok=True)
            index = len(items)
            path = folder / f"joined-{index:02d}.wav"
            wav = np.concatenate(parts[:-1])
            with atomic_path(path, suffix=".wav") as tmp:
                sf.write(tmp, wav, SAMPLE_RATE, subtype="PCM_16")
            items.append(Item(id=f"{pack}/joined-{index:02d}", path=str(path.relative_to(out_dir)),
                              duration=len(wav) / SAMPLE_RATE, sample_rate=SAMPLE_RATE, domain="speech", split="test",
                              text=" ".join(texts), language="en", speaker=speaker, base_speaker=speaker))
            texts, parts, seconds = [], [], 0.0
    return items
