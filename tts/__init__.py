"""Sonorant tts."""
