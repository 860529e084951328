"""Adaptive regularization as a technique: ``adaptive=awd`` (adaptive weight decay).

AWD (Ghiasi, Shafahi & Ardekani, NeurIPS 2023) sets the weight decay at every step from the
strength of the loss's pull: λ_t = λ_awd·‖∇w‖/‖w‖, smoothed by an EMA (``rotelab.engine.hyper
.AdaptiveDecay``). ``adaptive=awd`` uses the default λ_awd, ``adaptive=awd:0.3`` another.
The decay follows the gradient, so it needs no schedule and no validation split: it works in
every study. The population schemes (``pbt``, ``gap``) need an inner validation split and
several members per fold; ``rotelab adapt`` runs them.
"""

from __future__ import annotations

from dataclasses import replace

from rotelab.engine.recipe import Recipe
from rotelab.errors import InvalidInputError
from rotelab.techniques.base import Technique, number

#: λ_awd with Adam at rotelab's learning rate; measured on noisy digits and MNIST-1D (README).
DEFAULT_AWD = 0.1
STUDY_SCHEMES = ("pbt", "gap")


def parse(text: str) -> str:
    """``awd`` or ``awd:<λ_awd>`` -> the canonical ``awd:<λ_awd>``."""
    scheme, _, value = text.partition(":")
    if scheme in STUDY_SCHEMES:
        raise InvalidInputError(f"adaptive={scheme} needs a population per fold and an inner validation split: "
                                f"run it with `rotelab adapt --schemes {scheme}`")
    if scheme != "awd":
        raise InvalidInputError(f"unknown adaptive scheme {scheme!r}: expected awd (or pbt, gap in rotelab adapt)")
    coef = number("adaptive=awd", low=1e-9)(value) if value else DEFAULT_AWD
    return f"awd:{coef:g}"


def apply(recipe: Recipe, strength: str) -> Recipe:
    return replace(recipe, awd=float(strength.partition(":")[2]))


TECHNIQUE = Technique(
    name="adaptive", default=f"awd:{DEFAULT_AWD:g}",
    help="awd[:λ_awd]: adaptive weight decay, λ_t = λ_awd·|grad|/|w| per step (Ghiasi et al. 2023)",
    parse=parse, apply=apply,
)
