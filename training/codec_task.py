"""Codec training task: multi-scale mel + commitment losses, optional adversarial part."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..codec import Codec
from ..codec.discriminators import Discriminator
from ..codec.losses import MultiScaleMelLoss, discriminator_loss, feature_matching_loss, generator_loss
from ..data.segments import SegmentDataset, audio_files
from .recipe import CodecRecipe
from .trainer import Trainer

VALID_ITEMS = 16
VALID_SECONDS = 2.0


class CodecTask:
    def __init__(self, recipe: CodecRecipe, data: str | Path, device: torch.device,
                 generator: torch.Generator, init_from: str | Path | None = None) -> None:
        self.recipe, self.device, self.generator = recipe, device, generator
        self.codec = Codec(recipe.model).to(device)
        if init_from is not None:
            self.codec.load_state_dict(Codec.from_pretrained(init_from).state_dict())
        sr = recipe.model.sample_rate
        segment = int(recipe.train.segment_seconds * sr)
        segment -= segment % recipe.model.hop_length
        self.train_data = SegmentDataset(audio_files(data, "train"), sr, segment)
        valid_files = audio_files(data, "valid") or audio_files(data, "train")[:VALID_ITEMS]
        valid = SegmentDataset(valid_files[:VALID_ITEMS], sr, int(VALID_SECONDS * sr))
        # A fixed validation batch: the same crops at every evaluation, comparable across steps.
        self.valid_batch = valid.sample(VALID_ITEMS, torch.Generator().manual_seed(1234)).to(device)
        self.mel_loss = MultiScaleMelLoss(sr).to(device)
        t = recipe.train
        self._optimizers = {
            "codec": torch.optim.AdamW(self.codec.parameters(), t.lr, t.betas, weight_decay=t.weight_decay)}
        self.discriminator: Discriminator | None = None
        if recipe.loss.adversarial:
            self.discriminator = Discriminator(channels=recipe.loss.discriminator_channels).to(device)
            self._optimizers["discriminator"] = torch.optim.AdamW(
                self.discriminator.parameters(), t.lr, t.betas, weight_decay=t.weight_decay)

    def modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"codec": self.codec}
        if self.discriminator is not None:
            mods["discriminator"] = self.discriminator
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def train_step(self, step: int, trainer: Trainer) -> dict[str, float]:
        loss_cfg = self.recipe.loss
        wav = self.train_data.sample(self.recipe.train.batch_size, self.generator).to(self.device)
        metrics: dict[str, float] = {}
        with trainer.autocast():
            out = self.codec(wav)
        adversarial = self.discriminator is not None and step >= loss_cfg.discriminator_start_step
        if adversarial:
            with trainer.autocast():
                real, fake = self.discriminator(wav), self.discriminator(out.audio.detach())
                d_loss = discriminator_loss(real.logits, fake.logits)
            metrics["discriminator"] = float(d_loss.detach())
            trainer.optimize("discriminator", d_loss)
        mel = self.mel_loss(out.audio, wav)
        loss = loss_cfg.mel_weight * mel + loss_cfg.commitment_weight * out.losses["commitment"]
        if loss_cfg.waveform_weight > 0:
            waveform = (out.audio - wav).abs().mean()
            loss = loss + loss_cfg.waveform_weight * waveform
            metrics["waveform"] = float(waveform.detach())
        if adversarial:
            # The generator's loss must not leave gradients in the discriminator (they would add up
            # across accumulated micro-batches); it also saves the discriminator's weight gradients.
            self.discriminator.requires_grad_(False)
            with trainer.autocast():
                real, fake = self.discriminator(wav), self.discriminator(out.audio)
                gen, fm = generator_loss(fake.logits), feature_matching_loss(real.features, fake.features)
            self.discriminator.requires_grad_(True)
            loss = loss + loss_cfg.adversarial_weight * gen + loss_cfg.feature_matching_weight * fm
            metrics.update(generator=float(gen.detach()), feature_matching=float(fm.detach()))
        metrics.update(loss=float(loss.detach()), mel=float(mel.detach()),
                       commitment=float(out.losses["commitment"].detach()))
        metrics["grad_norm"] = trainer.optimize("codec", loss)
        k = self.codec.num_codebooks
        metrics["perplexity"] = sum(out.metrics[f"perplexity/{i}"] for i in range(k)) / k
        metrics["used"] = sum(out.metrics[f"used/{i}"] for i in range(k)) / k
        return metrics

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        metrics = {}
        for k in sorted({1, 2, 4, self.codec.num_codebooks}):
            if k <= self.codec.num_codebooks:
                out = self.codec(self.valid_batch, num_codebooks=k)
                metrics[f"mel/{k}"] = float(self.mel_loss(out.audio, self.valid_batch))
        metrics.update({f"codebook/{k}": v for k, v in out.metrics.items()})
        return metrics

    @torch.no_grad()
    def samples(self, step: int) -> dict[str, torch.Tensor]:
        wav = self.valid_batch[:1]
        out = self.codec(wav)
        return {"valid/reconstruction": out.audio, "valid/original": wav}
