"""The peers' codec architectures behind the interface our codec task trains, built from their own packages.

EnCodec's SEANet encoder / decoder and EMA residual VQ come from pip `encodec`; DAC's encoder, decoder and
factorised (projected, gradient-trained) residual VQ from pip `descript-audio-codec`, which runs in its own
virtual environment (see `peers.py`). Both are built with random weights and trained by our trainer on our
data with our losses, so a benchmark compares architectures, not training recipes. Quantizer dropout
keeps the first `levels[b]` codebooks of item b, as ours does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..codec import CodecOutput, codebook_usage


@dataclass(frozen=True)
class PeerConfig:
    """One architecture's size; the defaults of each `build_*` are the published 16 / 24 kHz models."""

    sample_rate: int = 16000
    num_codebooks: int = 8
    codebook_size: int = 1024
    width: int = 0  # EnCodec n_filters / DAC encoder_dim; 0 = published
    decoder_width: int = 0  # DAC decoder_dim; 0 = published
    lstm: int = 2  # EnCodec's LSTM layers after the encoder / before the decoder


class PeerCodec(nn.Module):
    """Encoder -> residual VQ -> decoder; subclasses say how one level quantizes and how codes decode."""

    def __init__(self, config: PeerConfig, encoder: nn.Module, decoder: nn.Module, hop_length: int) -> None:
        super().__init__()
        self.config, self.encoder, self.decoder, self.hop_length = config, encoder, decoder, hop_length
        self.sample_rate, self.num_codebooks = config.sample_rate, config.num_codebooks
        self.codebook_size = config.codebook_size

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def bitrate(self, num_codebooks: int | None = None) -> float:
        return self.frame_rate * (num_codebooks or self.num_codebooks) * (self.codebook_size - 1).bit_length()

    def levels(self) -> list[nn.Module]:
        raise NotImplementedError

    def quantize_level(self, level: nn.Module, residual: torch.Tensor):
        """-> (quantized [B, D, T] with straight-through gradient, codes [B, T], commitment [B], codebook [B])."""
        raise NotImplementedError

    def decode_level(self, level: nn.Module, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, wav: torch.Tensor, num_codebooks: int | None = None,
                levels: torch.Tensor | None = None) -> CodecOutput:
        n = wav.shape[-1]
        latent = self.encoder(F.pad(wav, (0, -n % self.hop_length)))
        k = num_codebooks or self.num_codebooks
        keep = levels.to(wav.device) if levels is not None and self.training else torch.full((wav.shape[0],), k,
                                                                                              device=wav.device)
        quantized = torch.zeros_like(latent)
        residual = latent
        commitment = codebook = latent.new_zeros(())
        codes = []
        for i, level in enumerate(self.levels()[:k]):
            q, c, commit, book = self.quantize_level(level, residual)
            mask = (i < keep).to(latent.dtype)
            quantized = quantized + q * mask[:, None, None]
            residual = residual - q
            commitment = commitment + (commit * mask).mean()
            codebook = codebook + (book * mask).mean()
            codes.append(c)
        codes_t = torch.stack(codes, dim=1)
        audio = self._fit(self.decoder(quantized), n)
        losses = {"commitment": commitment}
        if codebook.requires_grad:
            losses["codebook"] = codebook
        return CodecOutput(audio=audio, codes=codes_t, losses=losses,
                           usage=codebook_usage(codes_t.detach(), self.codebook_size))

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """wav [B, 1, N] -> codes [B, K', T]."""
        was_training = self.training
        self.eval()
        try:
            return self(wav, num_codebooks).codes
        finally:
            self.train(was_training)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K', T] -> wav [B, 1, T * hop]."""
        latent = sum(self.decode_level(level, codes[:, i]) for i, level in enumerate(self.levels()[: codes.shape[1]]))
        return self._fit(self.decoder(latent), codes.shape[-1] * self.hop_length)

    @staticmethod
    def _fit(audio: torch.Tensor, n: int) -> torch.Tensor:
        return F.pad(audio, (0, max(0, n - audio.shape[-1])))[..., :n]


class EncodecStyle(PeerCodec):
    """EnCodec: causal SEANet (ELU, weight norm, LSTM), 128-dim latent, EMA codebooks with k-means init."""

    def __init__(self, config: PeerConfig) -> None:
        from encodec.modules import SEANetDecoder, SEANetEncoder
        from encodec.quantization.vq import ResidualVectorQuantizer

        filters = config.width or 32
        common = dict(channels=1, dimension=128, n_filters=filters, ratios=[8, 5, 4, 2], causal=True,
                      norm="weight_norm", lstm=config.lstm)
        encoder, decoder = SEANetEncoder(**common), SEANetDecoder(**common)
        super().__init__(config, encoder, decoder, encoder.hop_length)
        self.quantizer = ResidualVectorQuantizer(dimension=128, n_q=config.num_codebooks, bins=config.codebook_size)

    def levels(self) -> list[nn.Module]:
        return list(self.quantizer.vq.layers)

    def quantize_level(self, level: nn.Module, residual: torch.Tensor):
        if not self.training:  # its forward would also k-means-initialise the codebook on this audio
            codes = level.encode(residual)
            return level.decode(codes), codes, *(residual.new_zeros(residual.shape[0]),) * 2
        q, codes, _ = level(residual)  # k-means init, EMA updates and dead-code expiry happen inside
        commitment = F.mse_loss(q.detach(), residual, reduction="none").mean([1, 2])
        return q, codes, commitment, torch.zeros_like(commitment)

    def decode_level(self, level: nn.Module, codes: torch.Tensor) -> torch.Tensor:
        return level.decode(codes)


class DacStyle(PeerCodec):
    """DAC: non-causal Snake/weight-norm convolutions, wide decoder, factorised 8-dim l2-normalised codes
    learnt by gradient (codebook loss)."""

    def __init__(self, config: PeerConfig) -> None:
        import dac

        model = dac.DAC(encoder_dim=config.width or 64, encoder_rates=[2, 4, 5, 8],
                        decoder_dim=config.decoder_width or 1536, decoder_rates=[8, 5, 4, 2],
                        n_codebooks=config.num_codebooks, codebook_size=config.codebook_size,
                        sample_rate=config.sample_rate)
        super().__init__(config, model.encoder, model.decoder, int(model.hop_length))
        self.quantizer = model.quantizer

    def levels(self) -> list[nn.Module]:
        return list(self.quantizer.quantizers)

    def quantize_level(self, level: nn.Module, residual: torch.Tensor):
        q, commitment, codebook, codes, _ = level(residual)
        return q, codes, commitment, codebook

    def decode_level(self, level: nn.Module, codes: torch.Tensor) -> torch.Tensor:
        return level.out_proj(level.decode_code(codes))
