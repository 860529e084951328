"""The pieces a report section is made of: figures, tables and number formats (no I/O)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


class Pct(float):
    """A fraction shown in percent (0.953 -> 95.3%); sorts by its value. Every accuracy, rate
    and share in the report is one, so a page never mixes 0.787 with 67.6%."""


class Points(float):
    """A difference of two fractions shown in percentage points (0.031 -> +3.1 pts)."""


def pcts(*values: float | None) -> list[float]:
    """Each value as :class:`Pct` (None and NaN stay NaN)."""
    return [Pct(float("nan") if v is None else v) for v in values]


def _fmt(v: float) -> str:
    if isinstance(v, Pct):
        return pct(v)
    if isinstance(v, Points):
        return "–" if v != v else ("0.0 pts" if round(100 * v, 1) == 0 else f"{100 * v:+.1f} pts")
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f"{v:,}"
    if v != v:
        return "–"
    return f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.3f}"


def pct(v: float | None) -> str:
    return "–" if v is None or v != v else f"{100 * v:.1f}%"


def points(v: float | None) -> str:
    """A difference of two fractions in signed points, without the unit: 0.031 -> '+3.1'."""
    return "–" if v is None or v != v else f"{100 * v:+.1f}"


def capital(text: str) -> str:
    """``text`` with its first letter upper-case (a sentence shared with the terminal)."""
    return text[:1].upper() + text[1:]


def figure(png: bytes, caption: str) -> dict:
    return {"kind": "figure", "png": b64(png), "caption": caption}


def table(columns: list[str], rows: list[list[Any]], *, best: int | None = None, sortable: bool = True) -> dict:
    return {"kind": "table", "columns": columns, "rows": rows, "best": best, "sortable": sortable, "fmt": _fmt}


def gallery(rows, xs, draw, caption, title) -> dict:
    """A gallery block: one picture per (row, x), ``draw(x, title)`` -> PNG bytes, with the
    row's ``caption(row)`` under it and ``title(row)`` above the picture."""
    return {"kind": "gallery", "pairs": False,
            "entries": [{"png": b64(draw(x, title(row))), "caption": caption(row)} for row, x in zip(rows, xs)]}


def generic_blocks(study: dict, result: dict, path: Any) -> list[dict]:
    """Studies without a dedicated section: their scalar results as a table."""
    flat = [[k, v] for k, v in result.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return [table(["result", "value"], flat, sortable=False)]
