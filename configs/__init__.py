"""Sonorant configs."""
