"""Measurements of static bias: library functions of a model and a loader (see docs/DEVELOPING.md)."""
