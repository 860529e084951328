"""Measures: pure numpy functions over (n_models, n_samples[, ...]) arrays; no I/O, no torch."""
