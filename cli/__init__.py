"""Sonorant cli."""
