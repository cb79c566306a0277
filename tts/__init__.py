"""Zero-shot TTS: the text frontend, voice prompts and saved voices, and the `Synthesizer` pipeline."""

from .frontend import TextError, TextFrontend
from .synthesizer import Audio, AudioChunk, SynthesisInfo, SynthesisOptions, Synthesizer
from .voices import Voice, VoiceError, list_voices, load_voice, remove_voice, save_voice

__all__ = ["Audio", "AudioChunk", "SynthesisInfo", "SynthesisOptions", "Synthesizer", "TextError", "TextFrontend",
           "Voice", "VoiceError", "list_voices", "load_voice", "remove_voice", "save_voice"]
