"""Speaker similarity: cosine of resemblyzer (GE2E) embeddings, the offline speaker encoder of the field.

Its weights ship inside the pip package. Install: pip install --no-deps resemblyzer webrtcvad-wheels librosa
(`--no-deps` because resemblyzer pins webrtcvad, which needs a compiler; webrtcvad-wheels replaces it).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import SonorantError

INSTALL = "pip install --no-deps resemblyzer && pip install webrtcvad-wheels librosa"


class SpeakerEncoder:
    def __init__(self) -> None:
        try:
            from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError:
            raise SonorantError(f"speaker similarity needs resemblyzer: {INSTALL}") from None
        self._encoder, self._preprocess = VoiceEncoder("cpu", verbose=False), preprocess_wav

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float audio -> unit-norm embedding [256]."""
        wav = self._preprocess(np.asarray(audio, dtype=np.float32), source_sr=sample_rate)
        if wav.size < sample_rate // 10:  # preprocessing trims silence; nothing voiced is left
            wav = np.asarray(audio, dtype=np.float32)
        e = self._encoder.embed_utterance(wav)
        return e / np.linalg.norm(e)

    def similarity(self, a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
        return float(self.embed(a, sample_rate) @ self.embed(b, sample_rate))
