"""Sonorant pretrained."""
