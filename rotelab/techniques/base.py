"""A technique = a name, a default strength, a range check, and a change to the recipe."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rotelab.engine.recipe import Recipe  # noqa: TC001  (a dataclass the techniques change)


#: ``on_batch(x (K, B, *features), targets (K, B, C), strength) -> (x, targets)``: a technique
#: that changes each training batch (after augmentation and mixing, before the forward pass).
BatchHook = Callable[[Any, Any, Any], tuple[Any, Any]]


@dataclass(frozen=True)
class Technique:
    """``parse`` turns the text after ``=`` into a checked strength (raising InvalidInputError);
    ``apply`` returns the recipe with the technique switched on at that strength. A technique
    the engine does not know by name brings ``on_batch`` and uses :func:`batch_hook` as its
    ``apply``: then adding it touches its own file and the list in ``rotelab.techniques``."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    apply: Callable[[Recipe, Any], Recipe]
    on_batch: BatchHook | None = None

    def describe(self, strength: Any) -> str:
        if isinstance(strength, tuple):
            strength = "+".join(strength)
        return f"{self.name}={strength}"


def set_recipe(**fields_from_strength: Callable[[Any], Any]) -> Callable[[Recipe, Any], Recipe]:
    """``apply`` that sets recipe fields from the strength."""

    def apply(recipe: Recipe, strength: Any) -> Recipe:
        return replace(recipe, **{k: f(strength) for k, f in fields_from_strength.items()})

    return apply


def batch_hook(name: str) -> Callable[[Recipe, Any], Recipe]:
    """``apply`` for a technique with an ``on_batch`` hook: the recipe records (name, strength)."""

    def apply(recipe: Recipe, strength: Any) -> Recipe:
        return replace(recipe, batch_techniques=(*recipe.batch_techniques, (name, float(strength))))

    return apply


def number(name: str, *, low: float, high: float | None = None, high_open: bool = False,
           integer: bool = False) -> Callable[[str], Any]:
    """Parser for a numeric strength within [low, high] (or [low, high))."""
    from rotelab.errors import InvalidInputError
    from rotelab.validation import check_float

    def parse(text: str):
        try:
            value = float(text)
        except ValueError:
            raise InvalidInputError(f"technique {name}: strength must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise InvalidInputError(f"technique {name}: strength must be finite, got {text!r}")
        if integer:
            if value != int(value):
                raise InvalidInputError(f"technique {name}: strength must be a whole number, got {text!r}")
            value = int(value)
        try:
            return check_float(f"technique {name} strength", value, low=low, high=high, high_open=high_open) \
                if not integer else int(check_float(f"technique {name} strength", value, low=low, high=high))
        except InvalidInputError as exc:
            raise InvalidInputError(str(exc)) from None

    return parse
