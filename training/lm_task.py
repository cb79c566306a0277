"""LM training task: token shards + phonemised text -> hierarchical LM, with the text-use gap logged."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.errors import SonorantError
from ..data.alignments import ItemAlignment, require_alignments
from ..data.shards import TokenShards
from ..data.token_dataset import TokenDataset, TokenExample, random_length_batch
from ..lm import Conditioning, HierarchicalLM, LMBatch
from ..lm.batch import pointer_from_durations
from ..text.captions import beats_per_frame, caption_encoder
from ..text.frontend import TextFrontend, phonemize
from .batching import MicroBatch, rank_parts
from .distributed import World
from .recipe import LMRecipe
from .trainer import Trainer

FRONTEND_FILE = "frontend.json"
CODEC_FILE = "codec.json"  # the codec the shards came from: the exported LM only speaks its tokens
PHONEMES_FILE = "phonemes.json"  # the aligner's run: the IPA of its texts, computed once
VALID_ITEMS = 16
DEFAULT_LANGUAGE = "en-us"


def phoneme_cache(texts: set[tuple[str, str]], path: Path) -> dict[str, str]:
    """IPA of every (language, text), computed once per run and kept in `path` (JSON)."""
    cache: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    missing: dict[str, list[str]] = {}
    for language, text in texts:
        if f"{language}\t{text}" not in cache:
            missing.setdefault(language, []).append(text)
    for language, batch in missing.items():
        for text, ipa in zip(batch, phonemize(batch, language), strict=True):
            cache[f"{language}\t{text}"] = ipa
    if missing:
        path.write_text(json.dumps(cache, ensure_ascii=False), encoding="utf-8")
    return cache


@dataclass
class LMParts:
    """A micro-batch and the global batch's target counts per codebook (its loss's denominators)."""

    batch: LMBatch
    totals: torch.Tensor  # [K]


class LMTask:
    def __init__(self, recipe: LMRecipe, shards: str | Path, run_dir: str | Path, world: World,
                 generator: torch.Generator, init_from: str | Path | None = None) -> None:
        self.world, self.device, self.generator = world, world.device, generator
        device = world.device
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        train, valid = TokenShards(shards, "train"), TokenShards(shards, "valid")
        if not len(valid):
            valid = TokenShards(shards, "test")
        if not len(train):
            raise SonorantError(f"{shards}: no train items")
        codec = train.codec
        m = recipe.model
        if m.codebook_size != codec.codebook_size or m.num_codebooks > codec.num_codebooks:
            raise SonorantError(f"{shards}: shards hold {codec.num_codebooks} x {codec.codebook_size} codes; the "
                                f"recipe models {m.num_codebooks} x {m.codebook_size}")
        self.num_codebooks = m.num_codebooks
        self.frame_rate = codec.frame_rate
        metas = train.meta + valid.meta
        # Speech is read as an aligned phoneme stream: the durations come from `sonorant data align`.
        self.alignments: dict[str, ItemAlignment] = {}
        if any(meta.text for meta in metas):
            _, self.alignments = require_alignments(shards)
        texts = {(meta.language or DEFAULT_LANGUAGE, meta.text) for meta in metas if meta.text}
        ipa = {f"{meta.language or DEFAULT_LANGUAGE}\t{meta.text}": self.alignments[meta.id].ipa for meta in metas
               if meta.text and meta.id in self.alignments}
        # Rank 0 writes the run's text files; the other ranks then read them.
        for main_turn in (True, False):
            if world.is_main == main_turn:
                if world.is_main:
                    (run_dir / CODEC_FILE).write_text(json.dumps(dataclasses.asdict(codec), indent=1) + "\n",
                                                      encoding="utf-8")
                base = Path(init_from) / FRONTEND_FILE if init_from is not None else None
                self.frontend = run_frontend(run_dir / FRONTEND_FILE, ipa, texts,
                                             TextFrontend.load(base) if base is not None and base.is_file() else None)
            world.barrier()
        if self.frontend.size > m.text_vocab_size:
            m = dataclasses.replace(m, text_vocab_size=self.frontend.size)
        t = recipe.train
        self.train_config = t
        usable = self._aligned_ids(metas)
        self.train_data = TokenDataset(train, t.max_item_frames, t.prompt_frames, t.speakers, keep=usable)
        if not len(self.train_data):
            raise SonorantError(f"{shards}: no train items of at most {t.max_item_frames} frames"
                                + (f" from speakers {', '.join(t.speakers)}" if t.speakers else "")
                                + " with durations that match their frames")
        self.lengths = self.train_data.lengths()
        self.config = m
        self.captions: dict[str, torch.Tensor] = {}
        if m.caption_dim:
            self.captions = embed_captions(sorted({meta.caption for meta in metas if meta.caption}),
                                           m.caption_encoder, m.caption_dim)
        self.model = HierarchicalLM(m).to(device)
        if init_from is not None:
            load_init_weights(self.model, HierarchicalLM.from_pretrained(init_from))
        self.order = sorted(range(len(self.train_data)), key=self.lengths.__getitem__)
        valid_data = TokenDataset(valid, t.max_item_frames, t.prompt_frames, t.speakers, keep=usable)
        fixed = torch.Generator().manual_seed(1234)
        # Spread over the split (shards hold items by length): the shortest 16 could all be one kind of clip.
        picks = sorted({round(i * (len(valid_data) - 1) / max(1, VALID_ITEMS - 1)) for i in range(VALID_ITEMS)}
                       if len(valid_data) else set())
        examples = [valid_data.example(i, fixed) for i in picks]
        self.valid_batch = self.collate(examples).to(device) if examples else None

    def _aligned_ids(self, metas) -> set[str]:
        """Items the LM can learn from: without text (captions, sound), or with durations that cover exactly
        their frames and their tokens."""
        keep = set()
        for meta in metas:
            if not meta.text:
                keep.add(meta.id)
                continue
            a = self.alignments.get(meta.id)
            if a is not None and sum(a.durations) == meta.frames and len(a.durations) == len(
                    self.frontend.utterance_ids(a.ipa, meta.language or DEFAULT_LANGUAGE)):
                keep.add(meta.id)
        return keep

    # -- batches --------------------------------------------------------------------------------
    def phonemes(self, example: TokenExample) -> tuple[list[int], torch.Tensor | None]:
        """Utterance ids and the token of every frame [T] of an example (empty and None without text)."""
        if not example.text:
            return [], None
        a = self.alignments[example.id]
        return (self.frontend.utterance_ids(a.ipa, example.language or DEFAULT_LANGUAGE),
                pointer_from_durations(list(a.durations)))

    def collate(self, examples: list[TokenExample], drop: torch.Tensor | None = None) -> LMBatch:
        k = self.num_codebooks
        streams = [self.phonemes(e) for e in examples]
        phonemes = torch.zeros(len(examples), max(1, max(len(ids) for ids, _ in streams)), dtype=torch.long)
        codes, code_lengths = _pad([e.codes[:k] for e in examples], k)
        pointer = torch.zeros(len(examples), codes.shape[-1], dtype=torch.long)
        for i, (ids, frames) in enumerate(streams):
            phonemes[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            if frames is not None:
                pointer[i, : len(frames)] = frames
        prompts = [e.prompt[:k] if e.prompt is not None else torch.zeros(k, 0, dtype=torch.long) for e in examples]
        prompt, prompt_lengths = _pad(prompts, k)
        caption = has_caption = beats = None
        if self.config.caption_dim:
            has_caption = torch.tensor([e.caption in self.captions for e in examples])
            caption = torch.stack([self.captions.get(e.caption, torch.zeros(self.config.caption_dim))
                                   for e in examples])
            beats = beats_per_frame([e.caption or "" for e in examples], self.frame_rate)
        cond = Conditioning(phonemes, torch.tensor([len(ids) for ids, _ in streams]), prompt, prompt_lengths, caption,
                            has_caption, beats)
        return LMBatch(cond, codes, code_lengths, pointer, drop)

    def next_batch(self, step: int) -> list[MicroBatch[LMParts]]:
        """Items of similar length around a random point of the length order (no padding waste), within the
        global frame budget; drawn whole on every rank with the run's generator (so a resumed run, or one
        with another number of processes, draws the same batches), each item's own choices (prompt crop,
        condition dropout) from a seed of its own. This rank reads only its part."""
        t, world = self.train_config, self.world
        chosen = random_length_batch(self.order, self.lengths, self.generator, t.batch_frames,
                                     None if t.batch_frames else t.batch_size, min_items=world.world_size)
        seeds = torch.randint(2**62, (len(chosen),), generator=self.generator).tolist()
        drop = torch.rand(len(chosen), generator=self.generator) < self.config.condition_dropout
        totals = self.model.target_counts(torch.tensor([self.lengths[p] for p in chosen]),
                                          torch.tensor([bool(self.train_data.meta(p).text) for p in chosen]))
        limit = t.micro_batch_frames or t.micro_batch_size
        costs = [self.lengths[p] for p in chosen] if t.micro_batch_frames else [1] * len(chosen)
        batches = []
        for positions in rank_parts(costs, world.world_size, world.rank, limit):
            examples = [self.train_data.example(chosen[i], torch.Generator().manual_seed(seeds[i])) for i in positions]
            batches.append(self.collate(examples, drop[positions]))
        return [MicroBatch(LMParts(b.to(self.device), totals), items=b.batch_size,
                           tokens=int(b.code_lengths.sum()) * self.num_codebooks) for b in batches]

    # -- the Task protocol ------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"lm": self.model}

    def shard_units(self) -> dict[str, list[nn.Module]]:
        return {"lm": [*self.model.global_transformer.blocks, *self.model.local_transformer.blocks]}

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.train_config
        return {"lm": torch.optim.AdamW(self.model.parameters(), t.lr, t.betas, weight_decay=t.weight_decay)}

    def train_step(self, micro: MicroBatch[LMParts], trainer: Trainer) -> dict[str, float]:
        batch = micro.data.batch
        with trainer.autocast():
            out = trainer.model("lm")(batch)
        metrics = {"loss": float(out.loss.detach())}
        metrics.update({k: float(v.detach()) for k, v in out.losses.items()})
        metrics.update({k: float(v) for k, v in out.metrics.items()})
        counts = self.model.target_counts(batch.code_lengths.cpu(), batch.condition.phoneme_lengths.cpu() > 0)
        metrics["grad_norm"] = trainer.optimize("lm", share_of_loss(out.losses, counts, micro.data.totals,
                                                                    self.config.codebook_weights,
                                                                    self.config.pointer_weight))
        metrics["frames"] = float(batch.code_lengths.sum())
        return metrics

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        """Held-out loss and pointer accuracy, and the loss with the phonemes (and the captions) of other items
        at the same pointer positions: the gaps show the model reads what it is told to say."""
        if self.valid_batch is None:
            return {}
        batch = self.valid_batch
        right = self.model(batch)
        cond = batch.condition
        shift = torch.roll(torch.arange(cond.batch_size), 1)
        metrics = {"loss": float(right.loss)}
        if bool((cond.phoneme_lengths > 0).any()):
            wrong_cond = dataclasses.replace(cond, phonemes=cond.phonemes[shift], phoneme_lengths=torch.minimum(
                cond.phoneme_lengths, cond.phoneme_lengths[shift]))
            wrong = self.model(dataclasses.replace(batch, condition=wrong_cond))
            metrics.update(loss_mismatched_text=float(wrong.loss), text_gap=float(wrong.loss - right.loss))
        if cond.caption is not None and bool(cond.has_caption.any()):
            swapped = dataclasses.replace(cond, caption=cond.caption[shift], has_caption=cond.has_caption[shift],
                                          beats_per_frame=cond.beats_per_frame[shift])
            metrics["caption_gap"] = float(self.model(dataclasses.replace(batch, condition=swapped)).loss - right.loss)
        metrics.update({k: float(v) for k, v in right.losses.items()})
        metrics.update({k: float(v) for k, v in right.metrics.items()})
        return metrics


def share_of_loss(losses: dict[str, torch.Tensor], counts: torch.Tensor, totals: torch.Tensor,
                  weights: tuple[float, ...], pointer_weight: float) -> torch.Tensor:
    """This micro-batch's part of the global batch's loss: its mean cross-entropy of codebook i (and the
    pointer's loss, last in `counts`) times its count of targets over the global count, so the parts of all
    micro-batches and ranks add up to exactly the loss of the whole batch in one forward."""
    total = sum(w * losses[f"ce/{i}"] * (float(counts[i]) / max(1.0, float(totals[i]))) for i, w in enumerate(weights))
    pointer = losses["pointer"] * (float(counts[-1]) / max(1.0, float(totals[-1])))
    return total / sum(weights) + pointer_weight * pointer


def run_frontend(path: Path, ipa: dict[str, str], texts: set[tuple[str, str]],
                 base: TextFrontend | None = None) -> TextFrontend:
    """The run's phoneme vocabulary: built from its texts once, then kept (a resumed run reads it back). With
    `base` (the vocabulary of the weights the run starts from) its ids stay and new symbols are appended."""
    if path.is_file():
        return TextFrontend.load(path)
    frontend = TextFrontend.build(list(ipa.values()), sorted({lang for lang, _ in texts}) or [DEFAULT_LANGUAGE])
    if base is not None:
        frontend = base.extended(frontend)
    frontend.save(path)
    return frontend


def load_init_weights(model: HierarchicalLM, released: HierarchicalLM) -> None:
    """Start `model` from released weights; phoneme embeddings grown for new symbols keep the released rows
    (the run's vocabulary extends the release's, see `run_frontend`) and their fresh initialisation elsewhere."""
    state = released.state_dict()
    mine = model.state_dict()
    for key in [k for k in state if k.startswith("phoneme_embeddings.")]:
        if state[key].shape != mine[key].shape:
            if state[key].shape[0] > mine[key].shape[0] or state[key].shape[1:] != mine[key].shape[1:]:
                raise SonorantError(f"--init-from: its phoneme embedding {tuple(state[key].shape)} does not fit the "
                                    f"recipe's {tuple(mine[key].shape)}")
            grown = mine[key].clone()
            grown[: state[key].shape[0]] = state[key]
            state[key] = grown
    model.load_state_dict(state)


def embed_captions(captions: list[str], encoder: str, dim: int) -> dict[str, torch.Tensor]:
    """Every distinct caption embedded once, before training."""
    if not captions:
        return {}
    model = caption_encoder(encoder)
    if model.dim != dim:
        raise SonorantError(f"caption encoder {encoder!r} gives {model.dim}-dim embeddings; the recipe says {dim}")
    vectors = model.encode(captions)
    return dict(zip(captions, vectors, strict=True))


def _pad(items: list[torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([x.shape[-1] for x in items])
    out = torch.zeros(len(items), k, max(1, int(lengths.max())), dtype=torch.long)
    for i, x in enumerate(items):
        out[i, :, : x.shape[-1]] = x
    return out, lengths
