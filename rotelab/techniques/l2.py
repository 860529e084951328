"""L2 as decoupled weight decay (Loshchilov & Hutter 2019): shrinks every weight each step.

Each step multiplies the weights by (1 − lr·λ), so the total shrinkage depends on lr·λ summed
over the run: with rotelab's short runs (a few hundred Adam steps at lr 1e-2) λ must be of
order 1 to matter (measured on noisy digits: λ=0.05 left 99.6% of flipped labels fitted, λ=1
67%, λ=2 22%). λ=1 is also the decay used in the grokking experiments (Power et al. 2022).
"""

from rotelab.techniques.base import Technique, number, set_recipe

TECHNIQUE = Technique(
    name="l2", default=1.0, help="decoupled weight decay λ ≥ 0 on weights (AdamW / SGD)",
    parse=number("l2", low=0.0), apply=set_recipe(l2=float),
)
