"""Experiment declarations, one file per paper ablation; `python -m registry list` shows them."""
