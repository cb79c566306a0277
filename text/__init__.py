"""The text frontend, shared by data, training, the aligner and TTS: normalisation (numbers, dates,
symbols -> words), offline G2P (phonemizer's espeak-ng backend), the phoneme vocabulary saved with each
model, chunking of long texts into what a model speaks in one go, and the caption encoders (a caption ->
one embedding, for caption-conditioned LMs)."""

from .frontend import TextError, TextFrontend

__all__ = ["TextError", "TextFrontend"]
