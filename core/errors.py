"""Errors a user can cause. The CLI prints their message on one line and exits with status 2."""


class SonorantError(Exception):
    """Base of every error caused by user input (bad file, bad flag value, mismatched model)."""


class AudioError(SonorantError):
    """Audio that cannot be read or used: missing, not audio, empty, silent, NaN/inf."""


class TokenFileError(SonorantError):
    """A `.stok` file that is truncated, of another version, or of another codec."""


class ModelError(SonorantError):
    """A model directory that is missing, incomplete, or of another kind or format."""
