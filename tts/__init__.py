"""Zero-shot TTS: voice prompts and saved voices, bundles and the `Synthesizer` pipeline (the text frontend
is `sonorant.text`).

The public names load on first use (PEP 562): the CLI checks texts and voices with the light modules
(`sonorant.text`, `voices`, `prompt`) before torch and the models load.
"""

from ..core.lazy import lazy_exports

_EXPORTS = {
    "Audio": "synthesizer", "AudioChunk": "synthesizer", "SynthesisInfo": "synthesizer",
    "SynthesisOptions": "synthesizer", "Synthesizer": "synthesizer",
    "Voice": "voices", "VoiceError": "voices", "list_voices": "voices", "load_voice": "voices",
    "remove_voice": "voices", "save_voice": "voices",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
