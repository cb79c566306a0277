"""Sonorant evaluation."""
