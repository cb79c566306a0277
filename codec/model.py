"""The streaming RVQ codec: causal encoder -> residual VQ -> causal decoder."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ModelError
from ..core.release import load_release, load_weights, release_fingerprint, save_release
from .config import CodecConfig
from .istft_decoder import FrameDecoder, FrameSpectrum, frame_spectra
from .quantizer import ResidualQuantizer
from .seanet import Decoder, Encoder
from .spectral_encoder import SpectralEncoder
from .streaming import StreamingModule, StreamState
from .usage import CodebookUsage, codebook_usage

KIND = "codec"
EMA_SUM = "embed_avg"  # training state of the EMA codebooks, rebuilt on load
# Config keys and weights that do not shape the tokens: the decoder's, and the phonetic head's (training only).
NOT_TOKENS = ("decoder", "decoder_dim", "decoder_blocks", "decoder_phase", "phonetic_classes")
# Config keys added after token spaces were named: left out of the fingerprint at these values, which the
# codecs named before them had, so their names stay.
LATER_KEYS = {"encoder": "seanet", "encoder_blocks": 8}


@dataclass
class CodecOutput:
    audio: torch.Tensor  # [B, 1, N] reconstruction, same length as the input
    codes: torch.Tensor  # [B, K, T] codes of every level that ran
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # scalars: "commitment"
    usage: CodebookUsage | None = None  # codebook use of these codes (tensors: no host sync in forward)
    spectrum: FrameSpectrum | None = None  # the istft decoder's predicted spectra (its losses read them)
    first_level: torch.Tensor | None = None  # [B, D, T] the first quantizer level's code vectors
    phoneme_logits: torch.Tensor | None = None  # [B, T, phonetic_classes] the phonetic head's, when it has one


@dataclass
class CodesBatch:
    codes: torch.Tensor  # [B, K, T] padded with the codes of zeros past each item's length
    lengths: torch.Tensor  # [B] valid frames per item


@dataclass
class AudioBatch:
    audio: torch.Tensor  # [B, 1, N] zero past each item's length
    lengths: torch.Tensor  # [B] valid samples per item


@dataclass
class CodecStreamState:
    pending: torch.Tensor  # [B, 1, r] samples waiting for a whole hop (r < hop)


class Codec(StreamingModule):
    """Audio [B, 1, N] float32 in [-1, 1] at `sample_rate` <-> codes [B, K, T] at `frame_rate`."""

    def __init__(self, config: CodecConfig | None = None) -> None:
        super().__init__()
        self.config = config or CodecConfig()
        self.encoder = SpectralEncoder(self.config) if self.config.encoder == "spectral" else Encoder(self.config)
        self.quantizer = ResidualQuantizer(self.config.latent_dim, self.config.quantizer)
        self.decoder = FrameDecoder(self.config) if self.config.decoder == "istft" else Decoder(self.config)
        classes = self.config.phonetic_classes
        self.phonetic = nn.Linear(self.config.latent_dim, classes) if classes else None

    # -- properties -------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def num_codebooks(self) -> int:
        return self.config.quantizer.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.quantizer.codebook_size

    @property
    def fingerprint(self) -> str:
        """16 hex digits naming the token space: the config and weights of encoder and quantizer. Token files,
        shards, saved voices and LMs record it; a decoder retrained for the same tokens keeps it."""
        config = {k: v for k, v in self.config.to_dict().items()
                  if k not in NOT_TOKENS and LATER_KEYS.get(k, object()) != v}
        state = {k: v for k, v in self.release_state().items() if not k.startswith(("decoder.", "phonetic."))}
        return release_fingerprint(config, state)

    # -- training ---------------------------------------------------------------------------
    def forward(self, wav: torch.Tensor, num_codebooks: int | None = None,
                levels: torch.Tensor | None = None) -> CodecOutput:
        """Reconstruct wav [B, 1, N]; in training mode with quantizer dropout (`levels` [B]: its choices, see
        `ResidualQuantizer.dropout_levels`; drawn inside by default)."""
        length = wav.shape[-1]
        latent = self.encoder(self._pad_to_hop(wav))
        q = self.quantizer(latent, num_codebooks, levels)
        spectrum = None
        if isinstance(self.decoder, FrameDecoder):
            audio, spectrum = self.decoder.synthesize(q.quantized)
        else:
            audio = self.decoder(q.quantized)
        logits = self.phonetic(q.first_level.transpose(1, 2)) if self.phonetic is not None else None
        return CodecOutput(audio=audio[..., :length], codes=q.codes, losses={"commitment": q.commitment_loss},
                           usage=codebook_usage(q.codes.detach(), self.codebook_size), spectrum=spectrum,
                           first_level=q.first_level, phoneme_logits=logits)

    @torch.no_grad()
    def phonemes(self, codes: torch.Tensor) -> torch.Tensor:
        """The phonetic head's class per frame [B, T] from codebook 0 alone (codes [B, K', T])."""
        if self.phonetic is None:
            raise ValueError("this codec has no phonetic head (phonetic_classes is 0)")
        self._check_codes(codes)
        first = self.quantizer.decode(codes[:, :1])  # [B, D, T]
        return self.phonetic(first.transpose(1, 2)).argmax(-1)

    @torch.no_grad()
    def autoencode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, N] through encoder and decoder without the quantizer [B, 1, ceil(N / hop) * hop]: the
        ceiling the codes approach as codebooks are added (what quantization costs is the gap to it)."""
        self._check_audio(wav)
        return self.decoder(self.encoder(self._pad_to_hop(wav)))

    @torch.no_grad()
    def decode_with_phase(self, codes: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
        """An istft decoder's amplitudes for `codes` [B, K', T] with the phase of the audio they code, `wav`
        [B, 1, N]: the ceiling of a perfect phase (what the predicted phase costs is the gap to it)."""
        if not isinstance(self.decoder, FrameDecoder):
            raise ValueError("only an istft decoder predicts a phase of its own")
        self._check_codes(codes)
        spectrum = self.decoder.spectrum(self.quantizer.decode(codes))
        length = codes.shape[-1] * self.hop_length
        target = frame_spectra(F.pad(wav, (0, max(length - wav.shape[-1], 0)))[..., :length], self.hop_length)
        return self.decoder.overlap_add(self.decoder.frames(spectrum.with_phase(target.angle())))

    # -- offline inference ------------------------------------------------------------------
    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """wav [B, 1, N] -> codes [B, K, ceil(N / hop)] (the last hop is zero-padded)."""
        self._check_audio(wav)
        return self.quantizer.encode(self.encoder(self._pad_to_hop(wav)), num_codebooks)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K', T] with K' <= K -> wav [B, 1, T * hop]."""
        self._check_codes(codes)
        return self.decoder(self.quantizer.decode(codes))

    def encode_batch(self, wav: torch.Tensor, lengths: torch.Tensor, num_codebooks: int | None = None) -> CodesBatch:
        """Padded wav [B, 1, N] with `lengths` [B] samples each -> codes and frame lengths.

        The encoder is causal, so padding after an item never changes that item's valid codes.
        """
        lengths = lengths.to(wav.device)
        mask = torch.arange(wav.shape[-1], device=wav.device)[None, :] < lengths[:, None]
        codes = self.encode(wav * mask[:, None, :], num_codebooks)
        return CodesBatch(codes=codes, lengths=-(-lengths // self.hop_length))

    def decode_batch(self, codes: torch.Tensor, frame_lengths: torch.Tensor,
                     sample_lengths: torch.Tensor | None = None) -> AudioBatch:
        """Codes [B, K', T] with `frame_lengths` [B] -> audio zeroed past each item's length.

        `sample_lengths` (the original lengths, when known) trims the zero-padding of the last hop.
        """
        audio = self.decode(codes)
        lengths = frame_lengths.to(audio.device) * self.hop_length
        if sample_lengths is not None:
            lengths = torch.minimum(lengths, sample_lengths.to(audio.device))
        mask = torch.arange(audio.shape[-1], device=audio.device)[None, :] < lengths[:, None]
        return AudioBatch(audio=audio * mask[:, None, :], lengths=lengths)

    # -- streaming inference ----------------------------------------------------------------
    def _init_streaming_state(self, batch_size: int) -> CodecStreamState:
        device = next(self.parameters()).device
        return CodecStreamState(pending=torch.zeros(batch_size, 1, 0, device=device))

    def encode_step(self, chunk: torch.Tensor, num_codebooks: int | None = None,
                    state: StreamState | None = None) -> torch.Tensor:
        """Any number of new samples [B, 1, n] -> codes [B, K', t] of the hops completed so far. `state` (from
        `new_stream`) is this stream's own; without it the module-wide `streaming()` state is used."""
        with self._bound(state):
            stream = self._stream_state()
            audio = torch.cat([stream.pending, chunk], dim=-1)
            usable = audio.shape[-1] // self.hop_length * self.hop_length
            stream.pending = audio[..., usable:]
            k = num_codebooks or self.num_codebooks
            if usable == 0:
                return torch.zeros(audio.shape[0], k, 0, dtype=torch.long, device=audio.device)
            return self.quantizer.encode(self.encoder(audio[..., :usable]), num_codebooks)

    def encode_flush(self, num_codebooks: int | None = None, state: StreamState | None = None) -> torch.Tensor:
        """Zero-pad the pending partial hop and return its codes [B, K', 0 or 1], as `encode` does."""
        with self._bound(state):
            stream = self._stream_state()
            if stream.pending.shape[-1] == 0:
                k = num_codebooks or self.num_codebooks
                return torch.zeros(stream.pending.shape[0], k, 0, dtype=torch.long, device=stream.pending.device)
            padded = F.pad(stream.pending, (0, self.hop_length - stream.pending.shape[-1]))
            stream.pending = stream.pending[..., :0]
            return self.quantizer.encode(self.encoder(padded), num_codebooks)

    def decode_step(self, codes: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """codes [B, K', t] -> the samples they complete: t * hop, less the decoder's lag (`config.decoder_lag`,
        one hop for the istft decoder) on the first call; `decode_flush` returns what is still held."""
        with self._bound(state):
            self._stream_state()
            return self.decode(codes)

    def decode_flush(self, state: StreamState | None = None) -> torch.Tensor:
        """The samples [B, 1, decoder_lag or 0] the decoder still holds at the end of a stream (the offline
        decode's last hop); nothing for a decoder without lag."""
        with self._bound(state):
            stream = self._stream_state()
            if isinstance(self.decoder, FrameDecoder):
                return self.decoder.flush()
            return stream.pending.new_zeros(stream.pending.shape[0], 1, 0)

    def _bound(self, state: StreamState | None):
        return nullcontext() if state is None else self.bind(state)

    def _stream_state(self) -> CodecStreamState:
        if self._streaming_state is None:
            raise RuntimeError("encode_step/decode_step need a state from `codec.new_stream(batch_size)` or "
                               "`with codec.streaming(batch_size):`")
        return self._streaming_state

    # -- release ----------------------------------------------------------------------------
    def release_state(self) -> dict[str, torch.Tensor]:
        """The weights a release needs: the state dict without the codebooks' EMA sums, which training
        keeps next to the codebooks (`embed_avg` = codebook x cluster size) and `from_pretrained` rebuilds."""
        return {k: v for k, v in self.state_dict().items() if not k.endswith(EMA_SUM)}

    def save_pretrained(self, directory: str | Path, half_decoder: bool = False) -> Path:
        """Release directory; `half_decoder` stores the decoder's (and phonetic head's) weights as float16, half
        their space (loaded as float32). Encoder and quantizer stay exact: they define the tokens."""
        state = self.release_state()
        if half_decoder:
            state = {k: v.half() if k.startswith(("decoder.", "phonetic.")) and v.is_floating_point() else v
                     for k, v in state.items()}
        return save_release(directory, KIND, self.config.to_dict(), state)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> Codec:
        config_dict, tensors = load_release(directory, KIND)
        try:
            config = CodecConfig.from_dict(config_dict)
        except (TypeError, ValueError) as e:
            raise ModelError(f"{directory}: bad codec config ({e})") from None
        model = cls(config)  # built for real: the quantizer holds non-persistent buffers
        for key in list(tensors):
            if key.endswith(".embed") and key.removesuffix("embed") + "cluster_size" in tensors:
                prefix = key.removesuffix("embed")
                tensors.setdefault(prefix + EMA_SUM, tensors[key] * tensors[prefix + "cluster_size"][..., None])
        load_weights(model, tensors, directory)
        return model.to(device).eval()

    # -- helpers ----------------------------------------------------------------------------
    def _pad_to_hop(self, wav: torch.Tensor) -> torch.Tensor:
        return F.pad(wav, (0, -wav.shape[-1] % self.hop_length))

    def _check_audio(self, wav: torch.Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected audio [B, 1, N], got {tuple(wav.shape)}")

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ValueError(f"expected codes [B, 1..{self.num_codebooks}, T], got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in 0..{self.codebook_size - 1}")
