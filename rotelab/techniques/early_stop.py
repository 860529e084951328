"""Early stopping on validation loss, restoring each model's best epoch."""

from rotelab.techniques.base import Technique, number, set_recipe

TECHNIQUE = Technique(
    name="early-stop", default=5, help="patience in epochs (whole number ≥ 1)",
    parse=number("early-stop", low=1, integer=True), apply=set_recipe(early_stop=int),
)
