"""Streaming RVQ neural audio codec.

The public names load on first use (PEP 562), so `sonorant.codec.config` and its other light modules
can be imported without torch: the CLI answers `--help` and user errors before any model code loads.
"""

from ..core.lazy import lazy_exports

_EXPORTS = {
    "CodecConfig": "config", "QuantizerConfig": "config",
    "AudioBatch": "model", "Codec": "model", "CodecOutput": "model", "CodesBatch": "model",
    "CodebookUsage": "usage", "codebook_usage": "usage",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
