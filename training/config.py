"""Typed training configuration; YAML recipes override these defaults (see `recipe.py`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """The `train:` keys every task reads: the loop, the optimiser and its schedule, distribution, logging.
    Each task's section adds its own data keys (below) and refuses another task's."""

    max_steps: int = 7000
    # Wall-clock budget of the training loop in minutes (0 = none): training stops after the step that
    # crosses it, with the usual end-of-run validation and checkpoint.
    max_minutes: float = 0.0
    # The global batch of one optimiser step, over all processes, in items. It stays the same whatever the
    # number of processes.
    batch_size: int = 8
    # Gradient accumulation: at most this many items per forward and process; 0 = each process's share of
    # the batch in one forward.
    micro_batch_size: int = 0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0
    amp: bool = True  # bf16 autocast on GPUs with bf16 only (bf16 is very slow on CPU)
    strategy: str = "ddp"  # under torchrun: ddp, or fsdp (FSDP2 fully_shard; the LM only)
    compile: bool = False  # torch.compile the training forward (checkpoint keys do not change)
    log_every: int = 25
    valid_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 0  # CPU threads for torch; 0 = torch's default


@dataclass(frozen=True)
class CodecTrainConfig(TrainConfig):
    segment_seconds: float = 1.0  # length of the random crops trained on
    # Modules kept as loaded from --init-from (e.g. ["encoder", "quantizer"]: a new decoder for an existing
    # token space, so token files and LMs made with the old codec stay valid).
    frozen: tuple[str, ...] = ()
    sample_every: int = 1000  # audio samples to tensorboard every n steps


@dataclass(frozen=True)
class LMTrainConfig(TrainConfig):
    # The global batch in padded frames (0: batch_size items), and at most this many padded frames per
    # forward and process (0: micro_batch_size).
    batch_frames: int = 0
    micro_batch_frames: int = 0
    max_item_frames: int = 1500  # longer items are left out (a crop would cut the text)
    # Train only on items whose base speaker starts with one of these (empty = every speaker), e.g.
    # ["flite:"] for one engine's voices.
    speakers: tuple[str, ...] = ()
    prompt_frames: tuple[int, int] = (150, 500)  # voice prompt length range in frames (3-10 s at 50 Hz)


@dataclass(frozen=True)
class AlignerTrainConfig(TrainConfig):
    max_seconds: float = 20.0  # longer items are left out
    max_items: int = 0  # train on the first n items of the manifest (0 = all)


@dataclass(frozen=True)
class CodecLossConfig:
    mel_weight: float = 15.0
    # Time-domain L1 (EnCodec's l_t): ties the output's phase and level to the input's, which the
    # log-mel loss alone leaves free; it matters most when training without the adversarial part.
    waveform_weight: float = 0.0
    commitment_weight: float = 0.25
    adversarial: bool = False  # multi-period + multi-band STFT discriminators with feature matching
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 2.0
    discriminator_start_step: int = 0
    discriminator_channels: int = 16
    # The istft decoder's spectral losses (`codec.losses.spectral_losses`) and the level term.
    amplitude_weight: float = 1.0
    phase_weight: float = 1.0  # each of phase, group delay, phase time difference
    complex_weight: float = 5.0
    consistency_weight: float = 5.0
    level_weight: float = 1.0
    phonetic_weight: float = 1.0  # the phonetic head's cross-entropy (model.phonetic_classes > 0)
