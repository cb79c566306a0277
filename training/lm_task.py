"""LM training task: token shards + phonemised text -> hierarchical LM, with the text-use gap logged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from ..codec.errors import SonorantError
from ..data.shards import TokenShards
from ..data.token_dataset import TokenDataset, TokenExample, random_length_batch
from ..lm import Conditioning, HierarchicalLM, LMBatch
from ..tts.captions import caption_encoder
from ..tts.frontend import TextFrontend, phonemize
from .recipe import LMRecipe
from .trainer import Trainer

FRONTEND_FILE = "frontend.json"
CODEC_FILE = "codec.json"  # the codec the shards came from: the exported LM only speaks its tokens
PHONEMES_FILE = "phonemes.json"
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


class LMTask:
    def __init__(self, recipe: LMRecipe, shards: str | Path, run_dir: str | Path, device: torch.device,
                 generator: torch.Generator, init_from: str | Path | None = None) -> None:
        self.device, self.generator = device, generator
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
        (run_dir / CODEC_FILE).write_text(json.dumps(dataclasses.asdict(codec), indent=1) + "\n", encoding="utf-8")
        metas = train.meta + valid.meta
        texts = {(meta.language or DEFAULT_LANGUAGE, meta.text) for meta in metas if meta.text}
        self.ipa = phoneme_cache(texts, run_dir / PHONEMES_FILE)
        frontend_path = run_dir / FRONTEND_FILE
        if frontend_path.is_file():  # a resumed run keeps its vocabulary
            self.frontend = TextFrontend.load(frontend_path)
        else:
            self.frontend = TextFrontend.build(list(self.ipa.values()), sorted({lang for lang, _ in texts})
                                               or [DEFAULT_LANGUAGE])
            self.frontend.save(frontend_path)
        if self.frontend.size > m.text_vocab_size:
            m = dataclasses.replace(m, text_vocab_size=self.frontend.size)
        self.config = m
        self.captions: dict[str, torch.Tensor] = {}
        if m.caption_dim:
            self.captions = embed_captions(sorted({meta.caption for meta in metas if meta.caption}),
                                           m.caption_encoder, m.caption_dim)
        self.model = HierarchicalLM(m).to(device)
        if init_from is not None:
            self.model.load_state_dict(HierarchicalLM.from_pretrained(init_from).state_dict())
        t = recipe.train
        self.train_config = t
        self.optimizer = torch.optim.AdamW(self.model.parameters(), t.lr, t.betas, weight_decay=t.weight_decay)
        self.train_data = TokenDataset(train, max_frames=t.max_frames)
        self.lengths = self.train_data.lengths()
        self.order = sorted(range(len(self.train_data)), key=self.lengths.__getitem__)
        valid_data = TokenDataset(valid, max_frames=t.max_frames)
        fixed = torch.Generator().manual_seed(1234)
        examples = [valid_data.example(i, fixed) for i in range(min(VALID_ITEMS, len(valid_data)))]
        self.valid_batch = self.collate(examples).to(device) if examples else None

    # -- batches --------------------------------------------------------------------------------
    def text_ids(self, example: TokenExample) -> list[int]:
        if not example.text:
            return []
        language = example.language or DEFAULT_LANGUAGE
        return self.frontend.ids(self.ipa[f"{language}\t{example.text}"], language)

    def collate(self, examples: list[TokenExample]) -> LMBatch:
        k = self.num_codebooks
        texts = [self.text_ids(e) for e in examples]
        text = torch.zeros(len(examples), max(1, max(len(t) for t in texts)), dtype=torch.long)
        for i, ids in enumerate(texts):
            text[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        codes, code_lengths = _pad([e.codes[:k] for e in examples], k)
        prompts = [e.prompt[:k] if e.prompt is not None else torch.zeros(k, 0, dtype=torch.long) for e in examples]
        prompt, prompt_lengths = _pad(prompts, k)
        caption = has_caption = None
        if self.config.caption_dim:
            has_caption = torch.tensor([e.caption in self.captions for e in examples])
            caption = torch.stack([self.captions.get(e.caption, torch.zeros(self.config.caption_dim))
                                   for e in examples])
        cond = Conditioning(text, torch.tensor([len(t) for t in texts]), prompt, prompt_lengths, caption, has_caption)
        return LMBatch(cond, codes, code_lengths)

    def sample_batch(self) -> LMBatch:
        """Items of similar length around a random point of the length order (no padding waste), within
        the frame budget; drawn with the run's generator, so a resumed run draws the same batches."""
        t = self.train_config
        chosen = random_length_batch(self.order, self.lengths, self.generator, t.batch_frames,
                                     None if t.batch_frames else t.batch_size)
        return self.collate([self.train_data.example(p, self.generator) for p in chosen]).to(self.device)

    # -- the Task protocol ------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"lm": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"lm": self.optimizer}

    def train_step(self, step: int, trainer: Trainer) -> dict[str, float]:
        batch = self.sample_batch()
        with trainer.autocast():
            out = self.model(batch)
        metrics = {"loss": float(out.loss.detach())}
        metrics.update({k: float(v.detach()) for k, v in out.losses.items()})
        metrics.update(out.metrics)
        metrics["grad_norm"] = trainer.optimize("lm", out.loss)
        metrics["frames"] = float(batch.code_lengths.sum())
        return metrics

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        """Held-out loss with the right text (and caption) and with those of other items: the gap shows the
        model reads its conditioning (an LM that ignores it scores both the same)."""
        if self.valid_batch is None:
            return {}
        batch = self.valid_batch
        right = self.model(batch)
        cond = batch.condition
        shift = torch.roll(torch.arange(cond.batch_size), 1)
        caption = cond.caption[shift] if cond.caption is not None else None
        has_caption = cond.has_caption[shift] if cond.has_caption is not None else None
        mismatched = LMBatch(Conditioning(cond.text[shift], cond.text_lengths[shift], cond.prompt,
                                          cond.prompt_lengths, caption, has_caption), batch.codes, batch.code_lengths)
        wrong = self.model(mismatched)
        metrics = {"loss": float(right.loss), "loss_mismatched_text": float(wrong.loss),
                   "text_gap": float(wrong.loss - right.loss)}
        metrics.update({k: float(v) for k, v in right.losses.items()})
        metrics.update(right.metrics)
        return metrics

    def samples(self, step: int) -> dict[str, torch.Tensor]:
        return {}  # audio needs the codec; `sonorant tts` renders samples from an exported model


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
