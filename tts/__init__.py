"""Zero-shot TTS: the text frontend, voice prompts and saved voices, and the `Synthesizer` pipeline.

The public names load on first use (PEP 562): the CLI checks texts and voices with the light modules
(`frontend`, `voices`, `prompt`) before torch and the models load.
"""

from importlib import import_module

_EXPORTS = {
    "TextError": "frontend", "TextFrontend": "frontend",
    "Audio": "synthesizer", "AudioChunk": "synthesizer", "SynthesisInfo": "synthesizer",
    "SynthesisOptions": "synthesizer", "Synthesizer": "synthesizer",
    "Voice": "voices", "VoiceError": "voices", "list_voices": "voices", "load_voice": "voices",
    "remove_voice": "voices", "save_voice": "voices",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
