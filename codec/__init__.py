"""Streaming RVQ neural audio codec.

The public names load on first use (PEP 562), so `sonorant.codec.errors` and the other light modules
can be imported without torch: the CLI answers `--help` and user errors before any model code loads.
"""

from importlib import import_module

_EXPORTS = {
    "CodecConfig": "config", "QuantizerConfig": "config",
    "AudioError": "errors", "ModelError": "errors", "SonorantError": "errors", "TokenFileError": "errors",
    "AudioBatch": "model", "Codec": "model", "CodecOutput": "model", "CodesBatch": "model",
    "CodebookUsage": "usage", "codebook_usage": "usage",
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
