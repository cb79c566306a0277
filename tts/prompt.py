"""Voice prompts: any audio file -> a clean 3-10 s mono clip at the codec's rate.

Steps: read (any format soundfile reads, resampled and downmixed), trim leading and trailing
silence, loudness-normalise to the level of the training corpus, and keep at most `max_seconds`
(cut at the quietest moment of the last seconds, so a word is not cut in half).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.audio import audio_info, load_audio
from ..core.errors import AudioError
from ..text.frontend import TextError, check_speakable

if TYPE_CHECKING:
    import torch

TARGET_LUFS = -20.0  # median loudness of the offline corpus' clips (ITU-R BS.1770, torchaudio)
PEAK_LIMIT = 0.95
SILENCE_DB = -40.0  # relative to the loudest 20 ms window
MIN_SECONDS = 1.0  # below this there is too little voice to clone
ADVISED_SECONDS = 3.0
MAX_PROMPT_SECONDS = 10.0
READ_SECONDS = 60.0  # of a prompt file at most: leading silence is trimmed, then 10 s are kept
# Speech says about 15 characters a second, so a 10 s prompt's transcript has about 150; one character per codec
# frame of the longest prompt (50 a second) is far past anything a prompt can say, and the aligner's work grows
# with the transcript's length.
MAX_TRANSCRIPT_CHARS = 500


@dataclass
class PreparedPrompt:
    audio: torch.Tensor  # [1, N] at sample_rate
    sample_rate: int
    notes: list[str] = field(default_factory=list)  # what was changed, for stderr

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


def check_transcript(text: str) -> str:
    """A voice prompt's transcript, cleaned; TextError when it has nothing to say or cannot belong to a prompt
    of at most 10 s (checked before any audio is read or model work is done)."""
    try:
        cleaned = check_speakable(text)
    except TextError as e:
        raise TextError(f"the voice prompt's transcript: {e}") from None
    if len(cleaned) > MAX_TRANSCRIPT_CHARS:
        raise TextError(f"the voice prompt's transcript has {len(cleaned)} characters: a prompt of at most "
                        f"{MAX_PROMPT_SECONDS:.0f} s cannot say that much (at most {MAX_TRANSCRIPT_CHARS} are "
                        "accepted; give the transcript of the prompt only)")
    return cleaned


def _window_db(wav: torch.Tensor, window: int) -> torch.Tensor:
    """Level in dB of consecutive windows of `window` samples: [1, N] -> [W]."""
    import torch

    n = wav.shape[-1] // window
    frames = wav[0, : n * window].reshape(n, window)
    return 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-10)


def trim_silence(wav: torch.Tensor, sample_rate: int, threshold_db: float = SILENCE_DB) -> torch.Tensor:
    """Drop leading and trailing windows quieter than `threshold_db` below the loudest one (50 ms kept)."""
    window = sample_rate // 50
    level = _window_db(wav, window)
    if level.numel() == 0:
        return wav
    loud = (level > level.max() + threshold_db).nonzero()[:, 0]
    pad = sample_rate // 20
    start = max(0, int(loud[0]) * window - pad)
    end = min(wav.shape[-1], (int(loud[-1]) + 1) * window + pad)
    return wav[:, start:end]


def normalize_loudness(wav: torch.Tensor, sample_rate: int, target_lufs: float = TARGET_LUFS) -> torch.Tensor:
    """Gain to `target_lufs` integrated loudness, then limited so the peak stays below PEAK_LIMIT."""
    import torchaudio

    if wav.shape[-1] >= int(0.4 * sample_rate):  # BS.1770 gating needs one 400 ms block
        loudness = float(torchaudio.functional.loudness(wav, sample_rate))
        if loudness > -70:
            wav = wav * 10 ** ((target_lufs - loudness) / 20)
    peak = float(wav.abs().max())
    return wav * (PEAK_LIMIT / peak) if peak > PEAK_LIMIT else wav


def cut_at_pause(wav: torch.Tensor, sample_rate: int, max_seconds: float) -> torch.Tensor:
    """At most `max_seconds`, ending at the quietest 20 ms window of the last 2 s before the limit."""
    limit = int(max_seconds * sample_rate)
    if wav.shape[-1] <= limit:
        return wav
    window = sample_rate // 50
    search_from = max(0, limit - 2 * sample_rate)
    level = _window_db(wav[:, search_from:limit], window)
    cut = search_from + (int(level.argmin()) + 1) * window
    return wav[:, :cut]


def prepare_prompt(path: str | Path, sample_rate: int, max_seconds: float = MAX_PROMPT_SECONDS) -> PreparedPrompt:
    """Read and clean a voice prompt (its first minute at most). Raises AudioError for unreadable, silent or
    too-short audio."""
    info = audio_info(path)
    wav = load_audio(path, sample_rate, max_seconds=READ_SECONDS)
    notes = []
    original = info.frames / info.samplerate
    wav = trim_silence(wav, sample_rate)
    if wav.shape[-1] / sample_rate < MIN_SECONDS:
        raise AudioError(f"{path}: {wav.shape[-1] / sample_rate:.1f} s of voice after trimming silence; "
                         f"a prompt needs at least {MIN_SECONDS:.0f} s (3-10 s works best)")
    if wav.shape[-1] / sample_rate > max_seconds:
        wav = cut_at_pause(wav, sample_rate, max_seconds)
        notes.append(f"voice prompt cut from {original:.1f} s to {wav.shape[-1] / sample_rate:.1f} s at a pause "
                     f"(prompts of 3-{max_seconds:.0f} s are used)")
    elif wav.shape[-1] / sample_rate < ADVISED_SECONDS:
        notes.append(f"voice prompt is only {wav.shape[-1] / sample_rate:.1f} s; 3-10 s clones a voice better")
    return PreparedPrompt(normalize_loudness(wav, sample_rate), sample_rate, notes)
