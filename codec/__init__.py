"""Streaming RVQ neural audio codec."""

from .config import CodecConfig, QuantizerConfig
from .errors import AudioError, ModelError, SonorantError, TokenFileError
from .model import AudioBatch, Codec, CodecOutput, CodesBatch
from .usage import CodebookUsage, codebook_usage

__all__ = [
    "AudioBatch", "AudioError", "Codec", "CodecConfig", "CodecOutput", "CodebookUsage", "CodesBatch",
    "ModelError", "QuantizerConfig", "SonorantError", "TokenFileError", "codebook_usage",
]
