"""Sonorant lm."""
