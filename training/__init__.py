"""Sonorant training."""
