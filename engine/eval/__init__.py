"""Evaluation metrics (onset timing of generated audio)."""
