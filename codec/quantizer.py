"""Residual vector quantizer built on vector-quantize-pytorch, behind one fixed return type.

Why each option (see `QuantizerConfig`):
- EMA codebook updates (decay 0.99): codes follow the encoder without a codebook loss or optimizer
  state, which is stable on small CPU batches.
- k-means init on the first batch: codes start where the latents are, so few are dead from step 0.
- dead-code replacement (EMA cluster size < 2): unused codes are re-seeded from the current batch,
  keeping utilisation (perplexity) high.
- no projection (codebook_dim = latent dim, as in EnCodec): EMA codebooks then fit the residual
  itself, so every level lowers it. With DAC-style 8-dim projections and EMA updates, the
  projections were never trained to invert each other and the residual energy *grew* level after
  level (0.68 -> 1.05 -> ... 1.21 on speech after 500 steps), so codebooks 2..8 added nothing.
- rotation trick: gradients reach the encoder through the quantizer with their angle to the code
  preserved rather than copied straight through, which trains codebooks with fewer dead entries.
- quantizer dropout: per item, keep only the first n ~ U{1..K} levels, so one model serves 1..K.

The residual loop is ours (not `ResidualVQ`) so that a requested number of codebooks is honoured
exactly, in train and eval mode alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from loguru import logger
from torch import nn
from vector_quantize_pytorch import VectorQuantize

from .config import QuantizerConfig

# k-means init on a batch smaller than the codebook is expected (dead-code replacement fills the rest).
logger.disable("vector_quantize_pytorch")


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # [B, D, T] sum of the kept levels' code vectors
    codes: torch.Tensor  # [B, K', T] indices of the levels that ran (K' = requested codebooks)
    commitment_loss: torch.Tensor  # scalar
    first_level: torch.Tensor  # [B, D, T] the first level's code vectors (what a phonetic head reads)


class ResidualQuantizer(nn.Module):
    def __init__(self, dim: int, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config
        self.levels = nn.ModuleList(
            VectorQuantize(
                dim=dim,
                codebook_size=config.codebook_size,
                codebook_dim=config.codebook_dim,
                decay=config.ema_decay,
                kmeans_init=config.kmeans_init,
                kmeans_iters=config.kmeans_iters,
                threshold_ema_dead_code=config.dead_code_threshold,
                commitment_weight=config.commitment_weight,
                rotation_trick=config.rotation_trick,
                channel_last=True,
                # Under torch.distributed (the codec built after the process group is joined), the EMA
                # statistics, k-means init and dead-code samples are reduced across ranks, so every
                # rank keeps identical codebooks; one process: no communication.
                sync_codebook=torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1,
            )
            for _ in range(config.num_codebooks)
        )

    @property
    def num_codebooks(self) -> int:
        return len(self.levels)

    def _check(self, num_codebooks: int | None) -> int:
        k = self.num_codebooks if num_codebooks is None else num_codebooks
        if not 1 <= k <= self.num_codebooks:
            raise ValueError(f"num_codebooks must be in 1..{self.num_codebooks}, got {k}")
        return k

    def forward(self, latent: torch.Tensor, num_codebooks: int | None = None,
                levels: torch.Tensor | None = None) -> QuantizerOutput:
        """Quantize latent [B, D, T] with the first `num_codebooks` levels (all by default).

        In training mode, quantizer dropout additionally keeps, for a random share of the items,
        only the first n ~ U{1..k} levels of the output (the codes of every level are still returned).
        `levels` [B] gives those choices (`dropout_levels`, drawn by the data pipeline, so they do not
        depend on how a batch is split across processes; honoured in eval mode too, where the codebooks
        stay fixed: a decoder trained for a frozen quantizer); by default they are drawn here.
        """
        k = self._check(num_codebooks)
        x = rearrange(latent, "b d t -> b t d")
        residual = x
        quantized = torch.zeros_like(x)
        if levels is not None:
            keep = levels.to(x.device).clamp(max=k)
        elif not self.training:
            keep = torch.full((x.shape[0],), k, device=x.device)
        else:
            keep = self.dropout_levels(x.shape[0], k).to(x.device)  # [B] levels kept per item
        codes, losses, first = [], [], None
        for i, level in enumerate(self.levels[:k]):
            q, idx, loss = level(residual)
            first = q if first is None else first
            residual = residual - q.detach()
            mask = (keep > i).to(q.dtype)[:, None, None]
            quantized = quantized + q * mask
            codes.append(idx)
            losses.append(loss.sum())
        return QuantizerOutput(
            quantized=rearrange(quantized, "b t d -> b d t"),
            codes=torch.stack(codes, dim=1),
            commitment_loss=torch.stack(losses).sum(),
            first_level=rearrange(first, "b t d -> b d t"),
        )

    def dropout_levels(self, batch: int, k: int | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Quantizer dropout's choice for `batch` items: k levels, or n ~ U{1..k} for a random share."""
        return dropout_levels(batch, self._check(k), self.config.dropout_probability, generator)

    @torch.no_grad()
    def encode(self, latent: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """Latent [B, D, T] -> codes [B, K', T] (no codebook updates, whatever the mode)."""
        k = self._check(num_codebooks)
        residual = rearrange(latent, "b d t -> b t d")
        codes = []
        was_training = self.training
        self.eval()  # eval mode: no EMA update, no k-means init, no dead-code replacement
        try:
            for level in self.levels[:k]:
                idx = level(residual)[1]
                residual = residual - level.get_output_from_indices(idx)
                codes.append(idx)
        finally:
            self.train(was_training)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K', T] (K' <= K) -> quantized latent [B, D, T]."""
        self._check(codes.shape[1])
        out = sum(level.get_output_from_indices(codes[:, i]) for i, level in enumerate(self.levels[: codes.shape[1]]))
        return rearrange(out, "b t d -> b d t")


def dropout_levels(batch: int, k: int, probability: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Levels kept per item [batch]: k, or with `probability` n ~ U{1..k} (one model for every bitrate)."""
    keep = torch.full((batch,), k)
    if probability > 0:
        drop = torch.rand(batch, generator=generator) < probability
        random_k = torch.randint(1, k + 1, (batch,), generator=generator)
        keep = torch.where(drop, random_k, keep)
    return keep
