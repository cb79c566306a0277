"""The text frontend, shared by data, training, the aligner and TTS: normalisation (numbers, dates,
symbols -> words), offline G2P (phonemizer's espeak-ng backend), the phoneme vocabulary saved with each
model, and chunking of long texts into what a model speaks in one go."""

from .frontend import TextError, TextFrontend

__all__ = ["TextError", "TextFrontend"]
