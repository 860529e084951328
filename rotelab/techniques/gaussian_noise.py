"""Gaussian noise on the inputs (Bishop 1995: training with noise is Tikhonov regularization).

Every training batch gets fresh noise of standard deviation σ, in the units of the
features as the model sees them (standardized tabular features have std 1; images are on
[0, 1]). Unlike ``augment=noise``, σ is absolute and the same for every example.
"""

from rotelab.techniques.base import Technique, batch_hook, number


def add_noise(x, targets, sigma: float):
    """x (K, B, *features) plus N(0, σ²) noise drawn from the job's seeded torch RNG; targets unchanged."""
    import torch

    return x + sigma * torch.randn_like(x), targets


TECHNIQUE = Technique(
    name="gaussian-noise", default=0.1, help="σ > 0 of Gaussian noise added to every training input",
    parse=number("gaussian-noise", low=1e-9), apply=batch_hook("gaussian-noise"), on_batch=add_noise,
)
