"""L2 as decoupled weight decay (Loshchilov & Hutter 2019): shrinks every weight each step."""

from rotelab.techniques.base import Technique, number, set_recipe

TECHNIQUE = Technique(
    name="l2", default=5e-2, help="decoupled weight decay λ ≥ 0 on weights (AdamW / SGD)",
    parse=number("l2", low=0.0), apply=set_recipe(l2=float),
)
