"""Dropout (Srivastava et al. 2014): zero hidden units at random while training."""

from dataclasses import replace

from rotelab.techniques.base import Technique, number

TECHNIQUE = Technique(
    name="dropout", default=0.5, help="dropout probability p in [0, 1) after each hidden layer",
    parse=number("dropout", low=0.0, high=1.0, high_open=True),
    apply=lambda r, p: replace(r, model=replace(r.model, dropout=p)),
)
