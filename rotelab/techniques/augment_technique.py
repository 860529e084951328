"""Data augmentation: per-sample random transforms of each training batch (kornia)."""

from rotelab.errors import InvalidInputError
from rotelab.techniques.base import Technique, set_recipe

#: transform names by data kind; the default set is the first tuple of each kind.
TRANSFORMS = {
    "image": ("flip", "rotate", "translate", "crop", "noise"),
    "sequence": ("shift", "scale", "noise"),
    "vector": ("noise",),
}
ALL_TRANSFORMS = tuple(dict.fromkeys(t for ts in TRANSFORMS.values() for t in ts))
#: Flips are off by default: a mirrored digit or letter is often another class.
DEFAULTS = {"image": ("rotate", "translate", "crop"), "sequence": ("shift", "scale", "noise"), "vector": ("noise",)}


def parse(text: str) -> tuple[str, ...]:
    names = tuple(t for t in text.split("+") if t)
    for n in names:
        if n not in ALL_TRANSFORMS:
            raise InvalidInputError(f"unknown augmentation {n!r}: expected one of {', '.join(ALL_TRANSFORMS)}")
    if not names:
        raise InvalidInputError("augment= needs at least one transform, e.g. augment=rotate+translate")
    return names


TECHNIQUE = Technique(
    name="augment", default=(), help="transforms joined by + (" + ", ".join(ALL_TRANSFORMS) + "); default by data kind",
    parse=parse, apply=set_recipe(augment=tuple),
)
