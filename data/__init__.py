"""Sonorant data."""
