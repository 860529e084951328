"""L1 penalty λ·Σ|w| on weights: pushes weights to exact zeros (sparsity)."""

from rotelab.techniques.base import Technique, number, set_recipe

TECHNIQUE = Technique(
    name="l1", default=1e-3, help="penalty λ ≥ 0 on the sum of absolute weights",
    parse=number("l1", low=0.0), apply=set_recipe(l1=float),
)
