"""The sentence a compare study ends with: which technique beats the baseline once every
cell's test is adjusted (Holm), or why none does. Plain Python, so that the report and the
terminal share it without importing the engine."""

from __future__ import annotations

import math
from typing import Any

#: Family-wise significance level of the tests against the baseline.
SIGNIFICANCE = 0.05


def verdict(rows: list[dict], baseline: str | None, recommended: str | None, best: str) -> str:
    """The sentence the terminal and the report give about significance, from the table's rows
    (a CompareResult's table as records, or result.json's): which cell beats the baseline after
    Holm's adjustment, or why none does. "" without a baseline."""
    if baseline is None:
        return ""
    others = [r for r in rows if r["technique"] != baseline]
    tested = [r for r in others if _finite(r.get("p_value"))]
    if not tested:
        return (f"one split per cell: no test against {baseline} is possible (use folds >= 2 or repeats >= 2); "
                f"the highest mean is {best}")
    m = len(tested)

    def ps(r: dict) -> str:
        holm = r.get("p_holm", r["p_value"])
        return f"p = {r['p_value']:.3g}" + (f", {holm:.3g} after Holm's adjustment for {m} tests" if m > 1 else "")

    def holm(r: dict) -> float:
        return r.get("p_holm", r["p_value"])

    worse = [r["technique"] for r in tested if holm(r) < SIGNIFICANCE and r.get("delta_val_acc", 0) < 0]
    worse_text = f"; significantly worse than {baseline}: {', '.join(worse)}" if worse else ""
    if recommended is not None:
        rec = next(r for r in rows if r["technique"] == recommended)
        text = f"{recommended} beats {baseline} by {100 * rec['delta_val_acc']:+.1f} points ({ps(rec)})"
        also = [f"{r['technique']} ({100 * r['delta_val_acc']:+.1f}, Holm p = {holm(r):.2g})" for r in tested
                if r["technique"] != recommended and holm(r) < SIGNIFICANCE and r.get("delta_val_acc", 0) > 0]
        text += f"; also significantly better, with a lower mean: {', '.join(also)}" if also else ""
        return text + (f"; the highest mean is {best}, not significantly better" if best != recommended else "") \
            + worse_text
    alone = sorted((r for r in tested if r["p_value"] < SIGNIFICANCE and r.get("delta_val_acc", 0) > 0),
                   key=lambda r: r["p_value"])
    if alone:
        return (f"no technique beats {baseline} significantly once the {m} tests are adjusted: {alone[0]['technique']} "
                f"has {ps(alone[0])}; the highest mean is {best}" + worse_text)
    return f"no technique beats {baseline} significantly (p < {SIGNIFICANCE}); the highest mean is {best}" + worse_text


def _finite(v: Any) -> bool:
    return v is not None and v == v and math.isfinite(v)


__all__ = ["SIGNIFICANCE", "verdict"]
