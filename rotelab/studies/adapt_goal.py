"""The bar an ``adapt`` study holds its adaptive rows to, and the sentences that say whether
they cleared it. Plain Python (a pandas table in, no import of it), so that the terminal and
the report share the words without importing the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: the schemes whose rows compete for the goal (the grid, random search and baseline do not)
ADAPTIVE = ("pbt", "gap", "awd", "pbt-replay", "gap-replay")

#: significance level of the paired test quoted beside a goal
SIGNIFICANCE = 0.05

#: goal name -> (the most compute, as a multiple of the grid's; the bar below the reference; words)
GOALS = {"quarter": (0.25, -0.005, "≤ ¼ of the grid's compute, within 0.5 points of"),
         "equal": (1.0, 0.0, "≤ the grid's compute, above")}


def goal(table: pd.DataFrame, reference: str = "grid (best on CV)", per_fold: dict | None = None,
         test_train_ratio: float | None = None) -> dict:
    """The issue's bar: an adaptive row within 0.5 points of the ``reference`` row's validation
    accuracy at ≤ ¼ of the grid's compute, or above it at ≤ the grid's compute.

    Returns the best row of each kind with ``delta_points`` (its accuracy less the reference's)
    and ``margin_points`` (less the bar; ≥ 0 for "within", > 0 for "above" is ``met``, in the
    mean). ``nested``: the same against ``grid (inner val)``, the grid chosen as the adaptive
    rows choose (per fold, on the inner split), which carries no selection bias (the reference
    does, by design). Each best row also carries ``candidates``, the rows it was picked from (a
    margin is a mean, and the best of several means is optimistic too), and the ``p_value`` of
    the paired test against the reference: the table's against ``grid (best on CV)``, and with
    ``per_fold`` (row -> {"val_acc": per-fold values}) the same Nadeau–Bengio test against
    ``grid (inner val)``."""
    ref = float(table.loc[table["row"] == reference, "val_acc"].iloc[0])
    adaptive = table[table["scheme"].isin(ADAPTIVE)]
    out: dict[str, Any] = {"reference": reference, "grid_best_val_acc": ref}
    for name, (limit, bar, _) in GOALS.items():
        rows = adaptive[adaptive["compute"] <= limit + 1e-9]
        if rows.empty:
            out[name] = None
            continue
        best = rows.loc[rows["val_acc"].idxmax()]
        delta = float(best["val_acc"]) - ref
        margin = delta - bar
        p = best.get("p_value") if reference == "grid (best on CV)" else _p(per_fold, reference, best["row"],
                                                                             test_train_ratio)
        out[name] = {"row": best["row"], "val_acc": float(best["val_acc"]), "compute": float(best["compute"]),
                     "delta_points": 100 * delta, "margin_points": 100 * margin,
                     "met": bool(margin >= -1e-9 if name == "quarter" else margin > 1e-9),
                     "p_value": None if p is None or p != p else float(p), "candidates": int(len(rows))}
    out["met"] = any(bool(out[n] and out[n]["met"]) for n in GOALS)
    if reference != "grid (inner val)" and (table["row"] == "grid (inner val)").any():
        out["nested"] = goal(table, "grid (inner val)", per_fold, test_train_ratio)
    return out


def _p(per_fold: dict | None, reference: str, row: str, ratio: float | None) -> float | None:
    """p of the paired test of ``row`` against ``reference`` over the folds (None without them)."""
    if not per_fold or reference not in per_fold or row not in per_fold:
        return None
    from rotelab.measures.folds import paired_difference  # scipy: only when a study is summarized

    a, b = per_fold[reference]["val_acc"], per_fold[row]["val_acc"]
    return float(paired_difference(a, b, test_train_ratio=ratio).p_value) if len(a) > 1 else None


def goal_lines(g: dict) -> list[str]:
    """One sentence per goal of ``g`` (an AdaptResult's ``goal``, or result.json's) and of its
    ``nested`` goal, for the terminal and the report alike.

    "above" with a p-value of the paired test that does not reach 0.05 is said to be met in the
    mean only (against either reference); "within 0.5 points" is a statement about the mean (a
    test of no difference cannot prove closeness), so its p-value is quoted, not judged."""
    lines = []
    for goal_ in (g, g.get("nested")):
        for name, (_, _, what) in GOALS.items():
            b = goal_.get(name) if goal_ else None
            if not b:
                continue
            lines.append(f"goal at {what} {goal_['reference']}: {_outcome(name, b)} {b['row']}, "
                         f"{100 * b['val_acc']:.1f}% vs {100 * goal_['grid_best_val_acc']:.1f}% "
                         f"(Δ {_points(name, b)} points{_evidence(b)})")
    return lines


def _points(name: str, b: dict) -> str:
    """The best row's Δ against the reference in points (a result.json written before
    ``delta_points`` existed has the margin to the bar only)."""
    delta = b.get("delta_points", b["margin_points"] + 100 * GOALS[name][1])
    r = round(delta, 1) + 0.0
    return f"{r:+.1f}" if r else "0.0"


def _outcome(name: str, b: dict) -> str:
    if not b["met"]:
        return "missed; the best was"
    if name == "equal" and b.get("p_value") is not None and not b["p_value"] < SIGNIFICANCE:
        return "met in the mean only (not significant) by"
    return "met by"


def _evidence(b: dict) -> str:
    p = b.get("p_value")
    if p is None:
        return ""
    n = b["candidates"]
    among = "the only adaptive row at that compute" if n == 1 else f"the best of {n} adaptive rows"
    return f", p = {p:.2g}; {among}"


__all__ = ["ADAPTIVE", "GOALS", "goal", "goal_lines"]
