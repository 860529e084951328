"""mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019): train on blends of example pairs.

α = 1 (λ uniform on [0, 1]) is the mixup paper's CIFAR setting; α = 0.2 fitted 86% of flipped
labels on noisy digits, α = 1 54%.
"""

from rotelab.techniques.base import Technique, number, set_recipe

TECHNIQUE = Technique(
    name="mixup", default=1.0, help="Beta(α, α) mixing, α > 0",
    parse=number("mixup", low=1e-6),
    apply=set_recipe(mixup=float),
)
CUTMIX = Technique(
    name="cutmix", default=1.0, help="Beta(α, α) box area, α > 0",
    parse=number("cutmix", low=1e-6), apply=set_recipe(cutmix=float),
)
