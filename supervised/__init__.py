"""Supervised training of a video model: the cross-entropy step of ``main.py`` (also used by the
base-class training of the few-shot method)."""
