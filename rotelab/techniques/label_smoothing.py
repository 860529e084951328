"""Label smoothing (Szegedy et al. 2016): train towards (1−ε)·one-hot + ε/C."""

from rotelab.techniques.base import Technique, number, set_recipe

TECHNIQUE = Technique(
    name="label-smoothing", default=0.1, help="ε in [0, 1)",
    parse=number("label-smoothing", low=0.0, high=1.0, high_open=True), apply=set_recipe(label_smoothing=float),
)
