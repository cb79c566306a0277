"""Codec training task: multi-scale mel + commitment losses, optional adversarial part.

It trains our `Codec` by default, or any module with the same training interface (`sample_rate`,
`hop_length`, `num_codebooks`, `forward(wav, num_codebooks=, levels=) -> CodecOutput` with its codebook
`usage`; a `codebook` loss, if given, is added with weight 1): the codec-train
benchmark trains the peers' architectures through it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..codec import Codec
from ..codec.discriminators import Discriminator
from ..codec.losses import (
    MultiScaleMelLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    level_loss,
    spectral_losses,
)
from ..codec.quantizer import dropout_levels
from ..core.errors import SonorantError
from ..data.frame_labels import IGNORE, FrameLabels, frame_labels
from ..data.segments import Crop, SegmentDataset, audio_files
from .batching import MicroBatch, rank_parts
from .distributed import World
from .lm_task import FRONTEND_FILE
from .recipe import CodecRecipe
from .trainer import Trainer

VALID_ITEMS = 16
VALID_SECONDS = 2.0
PARTS = ("encoder", "quantizer", "decoder", "phonetic")
SPECTRAL_WEIGHTS = {"amplitude": "amplitude_weight", "phase": "phase_weight", "group_delay": "phase_weight",
                    "phase_time": "phase_weight", "complex": "complex_weight", "consistency": "consistency_weight"}


@dataclass
class CodecParts:
    """A micro-batch: audio crops and their quantizer-dropout levels, with its share of the global batch."""

    wav: torch.Tensor  # [B, 1, N]
    levels: torch.Tensor  # [B]
    share: float
    labels: torch.Tensor | None = None  # [B, T] phoneme class per frame (IGNORE where none), phonetic head only


class CodecTask:
    def __init__(self, recipe: CodecRecipe, data: str | Path, world: World,
                 generator: torch.Generator, init_from: str | Path | None = None,
                 codec: nn.Module | None = None, alignments: str | Path | None = None,
                 out: str | Path | None = None) -> None:
        self.recipe, self.world, self.device, self.generator = recipe, world, world.device, generator
        device = world.device
        self.codec = (codec if codec is not None else Codec(recipe.model)).to(device)
        if init_from is not None:
            load_parts(self.codec, Codec.from_pretrained(init_from))
        self.frozen = recipe.train.frozen
        unknown = set(self.frozen) - set(PARTS)
        if unknown:
            raise SonorantError(f"train.frozen: unknown parts {sorted(unknown)}; the codec's parts are {PARTS}")
        if self.frozen and init_from is None:
            raise SonorantError("train.frozen keeps parts as --init-from loaded them: give --init-from MODEL_DIR")
        for name in self.frozen:
            if getattr(self.codec, name, None) is not None:
                getattr(self.codec, name).requires_grad_(False)
        sr = self.codec.sample_rate
        segment = int(recipe.train.segment_seconds * sr)
        segment -= segment % self.codec.hop_length
        self.train_data = SegmentDataset(audio_files(data, "train"), sr, segment)
        valid_files = audio_files(data, "valid") or audio_files(data, "train")[:VALID_ITEMS]
        valid = SegmentDataset(valid_files[:VALID_ITEMS], sr, int(VALID_SECONDS * sr))
        self.labels = self._labels(data, alignments)
        if self.labels is not None and out is not None and world.rank == 0:  # the classes, exported with the codec
            Path(out).mkdir(parents=True, exist_ok=True)
            self.labels.frontend.save(Path(out) / FRONTEND_FILE)
        elif init_from is not None and "phonetic" in self.frozen and out is not None and world.rank == 0:
            inherited = Path(init_from) / FRONTEND_FILE  # a frozen phonetic head keeps the classes it was loaded with
            if inherited.is_file():
                Path(out).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(inherited, Path(out) / FRONTEND_FILE)
        # A fixed validation batch: the same crops at every evaluation, comparable across steps.
        valid_crops = valid.draw(VALID_ITEMS, torch.Generator().manual_seed(1234))
        self.valid_batch = valid.batch(valid_crops).to(device)
        self.valid_labels = self._crop_labels(valid, valid_crops)
        self.mel_loss = MultiScaleMelLoss(sr).to(device)
        self.discriminator: Discriminator | None = None
        if recipe.loss.adversarial:
            self.discriminator = Discriminator(channels=recipe.loss.discriminator_channels).to(device)

    def _labels(self, data: str | Path, alignments: str | Path | None) -> FrameLabels | None:
        classes = self.codec.config.phonetic_classes if isinstance(self.codec, Codec) else 0
        if not classes or "phonetic" in self.frozen:
            return None
        if alignments is None:
            raise SonorantError("the codec's phonetic head learns from phoneme durations: give --alignments SHARDS "
                                "(the token shards `sonorant data align` wrote them to)")
        labels = frame_labels(data, alignments)
        if labels.frontend.size > classes:
            raise SonorantError(f"the alignments' phoneme vocabulary has {labels.frontend.size} symbols, more than "
                                f"model.phonetic_classes ({classes})")
        return labels

    def _crop_labels(self, dataset: SegmentDataset, crops: list[Crop]) -> torch.Tensor | None:
        if self.labels is None:
            return None
        frames = dataset.segment // self.codec.hop_length
        return torch.stack([self.labels.crop(dataset.files[c.file], dataset.start_seconds(c), frames,
                                             self.codec.frame_rate) for c in crops]).to(self.device)

    def modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"codec": self.codec}
        if self.discriminator is not None:
            mods["discriminator"] = self.discriminator
        return mods

    def shard_units(self) -> dict[str, list[nn.Module]]:
        return {}  # the codec is small: DDP

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.recipe.train
        return {name: torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], t.lr, t.betas,
                                        weight_decay=t.weight_decay)
                for name, module in self.modules().items()}

    def next_batch(self, step: int) -> list[MicroBatch[CodecParts]]:
        """The step's crops and dropout levels, drawn whole on every rank; this rank reads only its part."""
        t = self.recipe.train
        crops = self.train_data.draw(t.batch_size, self.generator)
        levels = dropout_levels(t.batch_size, self.codec.num_codebooks,
                                self.recipe.model.quantizer.dropout_probability, self.generator)
        frames = self.train_data.segment // self.codec.hop_length * self.codec.num_codebooks
        parts = []
        for positions in rank_parts([1] * t.batch_size, self.world.world_size, self.world.rank, t.micro_batch_size):
            mine = [crops[p] for p in positions]
            wav = self.train_data.batch(mine).to(self.device)
            data = CodecParts(wav, levels[positions], len(positions) / t.batch_size,
                              self._crop_labels(self.train_data, mine))
            parts.append(MicroBatch(data, items=len(positions), tokens=len(positions) * frames))
        return parts

    def train_step(self, micro: MicroBatch[CodecParts], trainer: Trainer) -> dict[str, float]:
        loss_cfg = self.recipe.loss
        wav, share = micro.data.wav, micro.data.share
        metrics: dict[str, float] = {}
        for name in self.frozen:  # eval mode: fixed codebooks (no EMA update, no dead-code replacement)
            if getattr(self.codec, name, None) is not None:
                getattr(self.codec, name).eval()
        with trainer.autocast():
            out = trainer.model("codec")(wav, levels=micro.data.levels)
        adversarial = self.discriminator is not None and trainer.step >= loss_cfg.discriminator_start_step
        if adversarial:
            with trainer.autocast():
                discriminator = trainer.model("discriminator")
                real, fake = discriminator(wav), discriminator(out.audio.detach())
                d_loss = discriminator_loss(real.logits, fake.logits)
            metrics["discriminator"] = float(d_loss.detach())
            trainer.optimize("discriminator", d_loss * share)
        # The istft decoder's last hop waits for a frame the crop does not have: it is left out.
        lag = self.codec.config.decoder_lag if isinstance(self.codec, Codec) else 0
        audio, target = (out.audio[..., :-lag], wav[..., :-lag]) if lag else (out.audio, wav)
        mel = self.mel_loss(audio, target)
        loss = loss_cfg.mel_weight * mel
        if "quantizer" not in self.frozen:
            loss = loss + loss_cfg.commitment_weight * out.losses["commitment"]
        if out.phoneme_logits is not None and micro.data.labels is not None:
            phonetic, accuracy = phonetic_loss(out.phoneme_logits, micro.data.labels)
            loss = loss + loss_cfg.phonetic_weight * phonetic
            metrics.update(phonetic=float(phonetic.detach()), phonetic_accuracy=accuracy)
        if out.spectrum is not None:
            for name, value in spectral_losses(out.spectrum, out.audio, wav, self.codec.hop_length).items():
                loss = loss + getattr(loss_cfg, SPECTRAL_WEIGHTS[name]) * value
                metrics[name] = float(value.detach())
            level = level_loss(audio, target)
            loss = loss + loss_cfg.level_weight * level
            metrics["level"] = float(level.detach())
        if "codebook" in out.losses:  # codebooks learnt by gradient (DAC's quantizer)
            loss = loss + out.losses["codebook"]
            metrics["codebook"] = float(out.losses["codebook"].detach())
        if loss_cfg.waveform_weight > 0:
            waveform = (out.audio - wav).abs().mean()
            loss = loss + loss_cfg.waveform_weight * waveform
            metrics["waveform"] = float(waveform.detach())
        if adversarial:
            # The generator's loss must not leave gradients in the discriminator (they would add up
            # across accumulated micro-batches); it also saves the discriminator's weight gradients. It
            # runs the bare module: no gradient of it is reduced across ranks.
            self.discriminator.requires_grad_(False)
            with trainer.autocast():
                real, fake = self.discriminator(wav), self.discriminator(out.audio)
                gen, fm = generator_loss(fake.logits), feature_matching_loss(real.features, fake.features)
            self.discriminator.requires_grad_(True)
            loss = loss + loss_cfg.adversarial_weight * gen + loss_cfg.feature_matching_weight * fm
            metrics.update(generator=float(gen.detach()), feature_matching=float(fm.detach()))
        metrics.update(loss=float(loss.detach()), mel=float(mel.detach()),
                       commitment=float(out.losses["commitment"].detach()))
        metrics["grad_norm"] = trainer.optimize("codec", loss * share)
        metrics["perplexity"] = float(out.usage.perplexity.mean())
        metrics["used"] = float(out.usage.used_fraction.mean())
        return metrics

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        metrics = {}
        for k in sorted({1, 2, 4, self.codec.num_codebooks}):
            if k <= self.codec.num_codebooks:
                out = self.codec(self.valid_batch, num_codebooks=k)
                metrics[f"mel/{k}"] = float(self.mel_loss(out.audio, self.valid_batch))
                metrics[f"level/{k}"] = float(level_loss(out.audio, self.valid_batch))
        if out.phoneme_logits is not None and self.valid_labels is not None:
            metrics["phonetic_accuracy"] = phonetic_loss(out.phoneme_logits, self.valid_labels)[1]
        for i, (p, u) in enumerate(zip(out.usage.perplexity.tolist(), out.usage.used_fraction.tolist(), strict=True)):
            metrics.update({f"codebook/perplexity/{i}": p, f"codebook/used/{i}": u})
        return metrics

    @torch.no_grad()
    def samples(self, step: int) -> dict[str, torch.Tensor]:
        wav = self.valid_batch[:1]
        out = self.codec(wav)
        return {"valid/reconstruction": out.audio, "valid/original": wav}


def load_parts(codec: nn.Module, source: Codec) -> None:
    """Load `source`'s weights into `codec` part by part (encoder, quantizer, decoder): a part whose
    architecture differs (a new decoder over an existing token space) keeps its fresh weights."""
    loaded = source.state_dict()
    own = codec.state_dict()
    for part in PARTS:
        keys = [k for k in own if k.startswith(part + ".")]
        if keys and all(k in loaded and loaded[k].shape == own[k].shape for k in keys) and \
                not any(k.startswith(part + ".") and k not in own for k in loaded):
            getattr(codec, part).load_state_dict({k.removeprefix(part + "."): loaded[k] for k in keys})


def phonetic_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy of the phonetic head [B, T, C] against frame labels [B, T] (IGNORE frames left out), and
    its accuracy on the labelled frames (NaN without any)."""
    labelled = labels != IGNORE
    if not labelled.any():
        return logits.sum() * 0.0, float("nan")
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    accuracy = (logits.argmax(-1) == labels)[labelled].float().mean()
    return loss, float(accuracy)
