"""Techniques that reduce memorization: small named pieces, composable with ``+``.

``baseline`` is none of them; a cell such as ``augment+dropout=0.3+l2`` switches on several.
Adding a technique touches two files: its own (a :class:`Technique`, with an ``on_batch``
hook when it changes training batches) and the list below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rotelab.engine.recipe import Recipe
from rotelab.errors import InvalidInputError
from rotelab.techniques import (
    adaptive, augment_technique, dropout, early_stop, gaussian_noise, l1, l2, label_smoothing, mixup,
)
from rotelab.techniques.base import Technique

TECHNIQUES: dict[str, Technique] = {t.name: t for t in (
    augment_technique.TECHNIQUE, mixup.TECHNIQUE, mixup.CUTMIX, dropout.TECHNIQUE, l1.TECHNIQUE, l2.TECHNIQUE,
    label_smoothing.TECHNIQUE, early_stop.TECHNIQUE, gaussian_noise.TECHNIQUE, adaptive.TECHNIQUE,
)}
BASELINE = "baseline"


@dataclass(frozen=True)
class Cell:
    """One row of a comparison: the techniques switched on, each with its strength."""

    parts: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return "+".join(TECHNIQUES[n].describe(s) if s != () else n for n, s in self.parts) or BASELINE

    def apply(self, recipe: Recipe, *, kind: str) -> Recipe:
        for name, strength in self.parts:
            if name == "augment" and strength == ():
                strength = augment_technique.DEFAULTS[kind]
            recipe = TECHNIQUES[name].apply(recipe, strength)
        return recipe

    @property
    def uses_validation(self) -> bool:
        return any(n == "early-stop" for n, _ in self.parts)


def parse_cell(text: str) -> Cell:
    """``"augment=flip+rotate+dropout=0.3"`` -> Cell; a bare transform name after ``augment``
    continues its list. Unknown names and strengths out of range raise InvalidInputError."""
    text = text.strip()
    if text in ("", BASELINE):
        return Cell(())
    parts: list[list[Any]] = []
    for token in text.split("+"):
        name, eq, value = token.partition("=")
        name = name.strip()
        if name in TECHNIQUES:
            tech = TECHNIQUES[name]
            if name in (p[0] for p in parts):
                raise InvalidInputError(f"technique {name!r} appears twice in {text!r}")
            parts.append([name, tech.parse(value.strip()) if eq else tech.default])
        elif not eq and parts and parts[-1][0] == "augment" and name in augment_technique.ALL_TRANSFORMS:
            parts[-1][1] = (*parts[-1][1], name)
        elif name == BASELINE:
            raise InvalidInputError(f"'baseline' cannot be combined with other techniques (in {text!r})")
        else:
            raise InvalidInputError(
                f"unknown technique {name!r}: expected baseline or one of {', '.join(TECHNIQUES)}"
            )
    return Cell(tuple((n, tuple(s) if isinstance(s, list) else s) for n, s in parts))


def parse_cells(text: str | list[str]) -> list[Cell]:
    """Comma-separated cells (or a list of them), each parsed by :func:`parse_cell`; no duplicates."""
    items = [t for t in (text.split(",") if isinstance(text, str) else text)]
    if not [t for t in items if t.strip()]:
        raise InvalidInputError("techniques is empty: give at least one, e.g. baseline,dropout,l2")
    cells = [parse_cell(t) for t in items if t.strip()]
    labels = [c.label for c in cells]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise InvalidInputError(f"technique cell {sorted(dup)[0]!r} is listed twice")
    return cells


def check_cell_for_data(cell: Cell, *, kind: str) -> None:
    """Refuse transforms that do not apply to this kind of data (e.g. ``rotate`` on sequences)."""
    for name, strength in cell.parts:
        if name == "augment":
            bad = [t for t in strength if t not in augment_technique.TRANSFORMS[kind]]
            if bad:
                raise InvalidInputError(
                    f"augmentation {bad[0]!r} does not apply to {kind} data: use "
                    f"{', '.join(augment_technique.TRANSFORMS[kind])}"
                )
        if name == "cutmix" and kind == "vector":
            raise InvalidInputError("cutmix needs images or sequences; use mixup for vector data")


def defaults_table() -> list[tuple[str, str, str]]:
    """(name, default strength, meaning) for help texts and the README."""
    rows = []
    for t in TECHNIQUES.values():
        d = "by data kind: " + "; ".join(f"{k} {'+'.join(v)}" for k, v in augment_technique.DEFAULTS.items()) \
            if t.name == "augment" else str(t.default)
        rows.append((t.name, d, t.help))
    return rows


__all__ = ["BASELINE", "Cell", "TECHNIQUES", "Technique", "check_cell_for_data", "defaults_table", "parse_cell",
           "parse_cells"]
