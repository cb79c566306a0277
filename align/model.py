"""The forced aligner of "One TTS Alignment To Rule Them All" (RAD-TTS): a text encoder and an audio
encoder, an attention from every audio frame to every token by squared distance, a beta-binomial prior,
the forward-sum (CTC) loss over all monotonic paths, and monotonic alignment search for hard durations.

Pure `torch.nn`: data, training and the CLI sit outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.release import load_release, release_fingerprint, save_release
from .config import AlignerConfig
from .features import LogMel
from .search import beta_binomial_prior, durations_of, hard_alignment

KIND = "aligner"


@dataclass
class AlignerOutput:
    log_attention: torch.Tensor  # [B, T, N] log P(token | frame), prior included; -inf outside the lengths
    log_likelihood: torch.Tensor  # [B, T, N] the same without the prior (what the audio alone says)
    loss: torch.Tensor  # forward-sum loss: mean over items of -log P(all monotonic paths) per frame


@dataclass
class Alignment:
    durations: torch.Tensor  # [B, N] frames per token, summing to each item's frame count
    cost: torch.Tensor  # [B] mean -log P(token | frame) along the path (without the prior): mismatch signal
    path: torch.Tensor  # [B, T, N] 0/1


def _conv_stack(dim_in: int, dim: int, out: int, layers: int, kernel: int) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Conv1d(dim_in if i == 0 else dim, dim, kernel, padding=kernel // 2), nn.ReLU()]
    return nn.Sequential(*blocks, nn.Conv1d(dim, out, 1))


class Aligner(nn.Module):
    def __init__(self, config: AlignerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.features = LogMel(c)
        self.embedding = nn.Embedding(c.text_vocab_size, c.text_dim)
        self.text_encoder = _conv_stack(c.text_dim, c.text_dim, c.attention_dim, c.text_layers, c.text_kernel)
        self.audio_encoder = _conv_stack(c.n_mels, c.audio_dim, c.attention_dim, c.audio_layers, c.audio_kernel)

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    def mel(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, N] at the aligner's sample rate -> log-mel [B, n_mels, ceil(N / hop)]."""
        return self.features(wav)

    def forward(self, tokens: torch.Tensor, token_lengths: torch.Tensor, mel: torch.Tensor,
                frame_lengths: torch.Tensor) -> AlignerOutput:
        """tokens [B, N] (0-padded), mel [B, n_mels, T] -> attention and the forward-sum loss."""
        b, n = tokens.shape
        t = mel.shape[-1]
        device = mel.device
        token_mask = torch.arange(n, device=device)[None] < token_lengths[:, None]  # [B, N]
        frame_mask = torch.arange(t, device=device)[None] < frame_lengths[:, None]  # [B, T]
        keys = self.text_encoder(self.embedding(tokens).transpose(1, 2) * token_mask[:, None])  # [B, A, N]
        queries = self.audio_encoder(_normalise(mel, frame_mask))  # [B, A, T]
        distance = (queries.pow(2).sum(1)[:, :, None] + keys.pow(2).sum(1)[:, None, :]
                    - 2 * queries.transpose(1, 2) @ keys)  # [B, T, N]
        logits = (-self.config.temperature * distance).masked_fill(~token_mask[:, None, :], float("-inf"))
        likelihood = logits.log_softmax(dim=-1)
        prior = torch.zeros_like(likelihood)
        for i in range(b):  # each item's own prior over its own lengths
            ti, ni = int(frame_lengths[i]), int(token_lengths[i])
            prior[i, :ti, :ni] = beta_binomial_prior(ni, ti, self.config.prior_scaling).to(device)
        log_attention = (likelihood + prior).masked_fill(~token_mask[:, None, :] | ~frame_mask[:, :, None],
                                                         float("-inf"))
        return AlignerOutput(log_attention, likelihood, self._forward_sum(log_attention, token_lengths,
                                                                          frame_lengths))

    def _forward_sum(self, log_attention: torch.Tensor, token_lengths: torch.Tensor,
                     frame_lengths: torch.Tensor) -> torch.Tensor:
        """CTC over the tokens in order with a blank: the probability of every monotonic path."""
        padded = F.pad(log_attention, (1, 0), value=self.config.blank_logprob)  # blank = class 0
        padded = padded.masked_fill(torch.isinf(padded), -1e4).log_softmax(dim=-1)
        n = log_attention.shape[-1]
        targets = torch.arange(1, n + 1, device=log_attention.device)[None].expand(log_attention.shape[0], n)
        loss = F.ctc_loss(padded.transpose(0, 1), targets, frame_lengths, token_lengths, reduction="none",
                          zero_infinity=True)
        return (loss / frame_lengths.clamp_min(1)).mean()

    @torch.no_grad()
    def align(self, tokens: torch.Tensor, token_lengths: torch.Tensor, mel: torch.Tensor,
              frame_lengths: torch.Tensor) -> Alignment:
        """Hard durations: the best monotonic path, every token at least one frame (needs frames >= tokens)."""
        out = self(tokens, token_lengths, mel, frame_lengths)
        renormalised = out.log_attention.log_softmax(dim=-1).nan_to_num(neginf=-1e4)
        path = hard_alignment(renormalised, token_lengths, frame_lengths)
        on_path = (out.log_likelihood.nan_to_num(neginf=0.0) * path).sum(dim=(1, 2))
        cost = -on_path / frame_lengths.clamp_min(1)
        return Alignment(durations_of(path), cost, path)

    # -- release ------------------------------------------------------------------------------
    def release_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("features.")}

    @property
    def fingerprint(self) -> str:
        """16 hex digits identifying config and weights: alignments name the aligner that made them."""
        return release_fingerprint(self.config.to_dict(), self.release_state())

    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        config = {**self.config.to_dict(), **({"extra": extra} if extra else {})}
        return save_release(directory, KIND, config, self.release_state())

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Aligner:
        config, tensors = load_release(directory, KIND)
        config.pop("extra", None)
        from ..core.errors import ModelError
        from ..core.release import load_weights

        try:
            model = cls(AlignerConfig.from_dict(config))
        except (TypeError, ValueError, KeyError) as e:
            raise ModelError(f"{directory}: bad aligner config ({e})") from None
        missing = load_weights(model, tensors, directory, strict=False)
        if missing.unexpected_keys or [k for k in missing.missing_keys if not k.startswith("features.")]:
            raise ModelError(f"{directory}: weights do not match the aligner config")
        return model.eval()


def binarization_loss(log_attention: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
    """Mean -log P(token | frame) of the attention (prior included) on the hard path [B, T, N]."""
    on_path = log_attention.nan_to_num(neginf=0.0) * path
    return -on_path.sum() / path.sum().clamp_min(1)


def _normalise(mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean and variance normalisation of each mel band over the valid frames, so loudness
    and recording channel do not move the attention; padding stays zero."""
    m = frame_mask[:, None, :].to(mel.dtype)
    count = m.sum(-1, keepdim=True).clamp_min(1)
    mean = (mel * m).sum(-1, keepdim=True) / count
    var = ((mel - mean).pow(2) * m).sum(-1, keepdim=True) / count
    return (mel - mean) / (var + 1e-3).sqrt() * m
