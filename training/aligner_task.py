"""Aligner training task: a manifest's speech with text -> forward-sum aligner, word boundaries checked
against the engines' own timings where the manifest has them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from ..align import Aligner
from ..align.model import binarization_loss
from ..align.pauses import without_edge_silence
from ..align.search import hard_alignment
from ..align.words import Segment, boundary_errors, signed_errors, spoken_words, timed_segments
from ..core.audio import load_audio
from ..core.errors import AudioError, SonorantError
from ..data.manifest import Item, read_manifest
from ..text.frontend import TextFrontend, clean_text, normalize
from .batching import MicroBatch, rank_parts
from .distributed import World
from .lm_task import DEFAULT_LANGUAGE, FRONTEND_FILE, PHONEMES_FILE, phoneme_cache, run_frontend
from .recipe import AlignerRecipe
from .trainer import Trainer

VALID_ITEMS = 128


@dataclass
class Utterance:
    item: Item
    tokens: torch.Tensor  # [N] utterance ids
    mel: torch.Tensor  # [n_mels, T] float16
    ipa: str


@dataclass
class AlignerParts:
    tokens: torch.Tensor  # [B, N]
    token_lengths: torch.Tensor  # [B]
    mel: torch.Tensor  # [B, n_mels, T]
    frame_lengths: torch.Tensor  # [B]
    share: float


def speech_with_text(manifest: str | Path, splits: tuple[str, ...]) -> list[Item]:
    path = Path(manifest)
    if path.is_dir():
        path = path / "manifest.jsonl"
    return [it for it in read_manifest(path) if it.domain == "speech" and it.text and it.split in splits]


class AlignerTask:
    def __init__(self, recipe: AlignerRecipe, data: str | Path, run_dir: str | Path, world: World,
                 generator: torch.Generator, init_from: str | Path | None = None, quiet: bool = False) -> None:
        self.recipe, self.world, self.device, self.generator = recipe, world, world.device, generator
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        manifest = Path(data) / "manifest.jsonl" if Path(data).is_dir() else Path(data)
        train_items = speech_with_text(manifest, ("train",))[: recipe.train.max_items or None]
        valid_items = speech_with_text(manifest, ("valid",))[:VALID_ITEMS]
        if not train_items:
            raise SonorantError(f"{data}: no speech items with text in the train split")
        texts = {(it.language or DEFAULT_LANGUAGE, it.text) for it in train_items + valid_items}
        for main_turn in (True, False):  # rank 0 phonemises and writes; the others then read
            if world.is_main == main_turn:
                self.ipa = phoneme_cache(texts, run_dir / PHONEMES_FILE)
                base = Path(init_from) / FRONTEND_FILE if init_from is not None else None
                self.frontend = run_frontend(run_dir / FRONTEND_FILE, self.ipa, texts,
                                             TextFrontend.load(base) if base is not None and base.is_file() else None)
            world.barrier()
        config = recipe.model
        if self.frontend.size > config.text_vocab_size:
            raise SonorantError(f"{self.frontend.size} phoneme symbols do not fit the aligner's text_vocab_size "
                                f"{config.text_vocab_size}")
        self.model = Aligner(config).to(self.device)
        if init_from is not None:
            self.model.load_state_dict(Aligner.from_pretrained(init_from).state_dict())
        self.manifest_dir = manifest.parent
        self.train = self._load(train_items, "aligner features", quiet or not world.is_main)
        self.valid = self._load(valid_items, "valid features", True)
        if not self.train:
            raise SonorantError(f"{data}: no usable speech items (audio unreadable or shorter than its phonemes)")

    @property
    def config(self):
        return self.model.config

    def _load(self, items: list[Item], label: str, quiet: bool) -> list[Utterance]:
        """Log-mels of every item, computed once (CPU float16: 12 h of speech is about 350 MB)."""
        out = []
        c = self.model.config
        with Progress(transient=True, disable=quiet) as progress, torch.no_grad():
            bar = progress.add_task(label, total=len(items))
            for item in items:
                progress.advance(bar)
                language = item.language or DEFAULT_LANGUAGE
                ipa = self.ipa[f"{language}\t{item.text}"]
                tokens = torch.tensor(self.frontend.utterance_ids(ipa, language))
                try:
                    wav = load_audio(self.manifest_dir / item.path, c.sample_rate)
                except AudioError:
                    continue
                if wav.shape[-1] > self.recipe.train.max_seconds * c.sample_rate:
                    continue
                mel = self.model.mel(wav.to(self.device))[0].cpu().half()
                if mel.shape[-1] >= len(tokens):  # every token needs a frame
                    out.append(Utterance(item, tokens, mel, ipa))
        return out

    def modules(self) -> dict[str, nn.Module]:
        return {"aligner": self.model}

    def shard_units(self) -> dict[str, list[nn.Module]]:
        return {}

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.recipe.train
        return {"aligner": torch.optim.AdamW(self.model.parameters(), t.lr, t.betas, weight_decay=t.weight_decay)}

    def collate(self, utterances: list[Utterance], share: float = 1.0) -> AlignerParts:
        n = max(len(u.tokens) for u in utterances)
        t = max(u.mel.shape[-1] for u in utterances)
        tokens = torch.zeros(len(utterances), n, dtype=torch.long)
        mel = torch.zeros(len(utterances), self.model.config.n_mels, t)
        for i, u in enumerate(utterances):
            tokens[i, : len(u.tokens)] = u.tokens
            mel[i, :, : u.mel.shape[-1]] = u.mel.float()
        token_lengths = torch.tensor([len(u.tokens) for u in utterances])
        frame_lengths = torch.tensor([u.mel.shape[-1] for u in utterances])
        return AlignerParts(tokens.to(self.device), token_lengths.to(self.device), mel.to(self.device),
                            frame_lengths.to(self.device), share)

    def next_batch(self, step: int) -> list[MicroBatch[AlignerParts]]:
        t = self.recipe.train
        picks = torch.randint(len(self.train), (t.batch_size,), generator=self.generator).tolist()
        picks.sort(key=lambda i: self.train[i].mel.shape[-1])  # similar lengths share a micro-batch
        parts = []
        for positions in rank_parts([1] * t.batch_size, self.world.world_size, self.world.rank, t.micro_batch_size):
            chosen = [self.train[picks[p]] for p in positions]
            frames = sum(u.mel.shape[-1] for u in chosen)
            parts.append(MicroBatch(self.collate(chosen, len(positions) / t.batch_size), items=len(chosen),
                                    tokens=frames))
        return parts

    def train_step(self, micro: MicroBatch[AlignerParts], trainer: Trainer) -> dict[str, float]:
        p = micro.data
        with trainer.autocast():
            out = trainer.model("aligner")(p.tokens, p.token_lengths, p.mel, p.frame_lengths)
        loss, metrics = out.loss, {"forward_sum": float(out.loss.detach())}
        losses = self.recipe.loss
        if losses.binarization_weight > 0 and trainer.step >= losses.binarization_start_step:
            renormalised = out.log_attention.detach().log_softmax(dim=-1).nan_to_num(neginf=-1e4)
            path = hard_alignment(renormalised, p.token_lengths, p.frame_lengths)
            binarization = binarization_loss(out.log_attention, path)
            loss = loss + losses.binarization_weight * binarization
            metrics["binarization"] = float(binarization.detach())
        metrics["loss"] = float(loss.detach())
        metrics["grad_norm"] = trainer.optimize("aligner", loss * p.share)
        return metrics

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        if not self.valid:
            return {}
        losses, costs, errors = [], [], []
        for start in range(0, len(self.valid), 16):
            chunk = self.valid[start: start + 16]
            p = self.collate(chunk)
            losses.append(float(self.model(p.tokens, p.token_lengths, p.mel, p.frame_lengths).loss) * len(chunk))
            alignment = self.model.align(p.tokens, p.token_lengths, p.mel, p.frame_lengths)
            costs += alignment.cost.tolist()
            for i, u in enumerate(chunk):
                if u.item.words:
                    predicted = self.predicted_words(u, alignment.durations[i, : len(u.tokens)].tolist(), p.mel[i])
                    errors += boundary_errors(predicted, list(u.item.words))
        metrics = {"loss": sum(losses) / len(self.valid), "cost": float(np.mean(costs))}
        if errors:
            metrics.update(boundary_median_ms=1000 * float(np.median(errors)),
                           boundary_p90_ms=1000 * float(np.percentile(errors, 90)))
        return metrics

    def predicted_words(self, u: Utterance, durations: list[int], mel: torch.Tensor) -> list[Segment]:
        """The word times an exported aligner prints for `u` (before its shifts): edge silence trimmed."""
        words = spoken_words(normalize(clean_text(u.item.text), u.item.language or DEFAULT_LANGUAGE))
        durations = without_edge_silence(durations, u.ipa, mel)
        return timed_segments(u.ipa, durations, self.model.frame_rate, words)[0]

    @torch.no_grad()
    def word_shifts(self) -> tuple[float, float]:
        """Median (start, end) difference of the aligner's word times to the engines' own on the validation
        clips (training voices, unseen sentences): what an exported aligner adds to its word times."""
        self.model.eval()
        errors = []
        for u in self.valid:
            if not u.item.words:
                continue
            p = self.collate([u])
            durations = self.model.align(p.tokens, p.token_lengths, p.mel, p.frame_lengths).durations[0].tolist()
            errors += signed_errors(self.predicted_words(u, durations, p.mel[0]), list(u.item.words))
        if not errors:
            return 0.0, 0.0
        starts, ends = zip(*errors, strict=True)
        return -float(np.median(starts)), -float(np.median(ends))

    def corpus_costs(self) -> list[float]:
        """Alignment cost per frame of every training utterance (the mismatch threshold comes from it)."""
        costs = []
        self.model.eval()
        with torch.no_grad():
            order = sorted(range(len(self.train)), key=lambda i: self.train[i].mel.shape[-1])
            for start in range(0, len(order), 32):
                p = self.collate([self.train[i] for i in order[start: start + 32]])
                costs += self.model.align(p.tokens, p.token_lengths, p.mel, p.frame_lengths).cost.tolist()
        return costs
