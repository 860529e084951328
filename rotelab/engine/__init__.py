"""Engine: trains the K members of a job at once (vectorized), with a per-model fallback."""

from rotelab.engine.recipe import OPTIMIZERS, Recipe
from rotelab.engine.train import CURVES, EXTRA_OUTPUTS, OUTPUTS, Members, evaluate, resolve_device, train_job

__all__ = ["CURVES", "EXTRA_OUTPUTS", "OPTIMIZERS", "OUTPUTS", "Members", "Recipe", "evaluate", "resolve_device", "train_job"]
