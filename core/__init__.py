"""What every part of sonorant shares and none owns: errors, atomic files, audio I/O, the release format
(safetensors + JSON), output and device checks, lazily loaded package exports."""

from .errors import AudioError, ModelError, SonorantError, TokenFileError

__all__ = ["AudioError", "ModelError", "SonorantError", "TokenFileError"]
