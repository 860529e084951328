"""Report section for ``adapt``: adaptive schemes against a grid of fixed strengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rotelab.report import figures
from rotelab.report.blocks import Pct, Points, capital, figure, pct, pcts, table
from rotelab.studies.adapt_goal import goal_lines

#: rows whose strength is shown over epochs (the chosen member of each fold): these, and every
#: PBT and gap-feedback row but the replays (their labels carry the budget: ``pbt ¼``, ``gap 1×``)
_SHOWN = ("grid (best on CV)", "random (inner val)")


def _shown(row: str) -> bool:
    return row in _SHOWN or (row.split(" ")[0] in ("pbt", "gap") and not row.endswith("replay"))


def blocks(study: dict, result: dict, path: Path) -> list[dict]:
    rows = result["table"]
    noisy = "noisy_memorized" in rows[0]
    labels = [r["row"] for r in rows]
    ref = labels.index("grid (best on CV)")
    g = result["goal"]
    out = [{"kind": "text", "text": _intro(result, noisy, g)},
           figure(figures.interval_bars(labels, [r["val_acc"] for r in rows], [r["val_acc_ci_low"] for r in rows],
                                        [r["val_acc_ci_high"] for r in rows], xlabel="validation accuracy (95% CI)",
                                        highlight=ref,
                                        extra={"noisy labels memorized": [r["noisy_memorized"] for r in rows]}
                                        if noisy else None),
                  "Validation accuracy of each row, mean and 95% CI across folds; orange: the grid point with "
                  "the best mean CV accuracy (the bar)." + (" Diamonds: fraction of flipped training labels "
                                                           "the chosen members reproduce." if noisy else ""))]
    sched = {k: np.asarray(v) for k, v in result["schedules"].items() if _shown(k)}
    awd = {k: np.asarray(v) for k, v in result["schedules"].items() if k.startswith("awd")}
    out.append(figure(figures.strength_over_epochs(sched, ylabel=f"{result['technique']} strength",
                                                   log=bool(result["log_scale"]), extra=awd,
                                                   extra_ylabel="AWD λ̄ (coupled decay, mean per epoch)"),
                      "The strength each fold's chosen member trained with, per epoch: median over folds, band "
                      "from the lowest to the highest fold (PBT: the lineage of weights the member inherited)."))
    cols = ["row", "val acc", "95% CI", "Δ vs grid (points)", "p", "test acc",
            "inner val acc (labels trained on)" if noisy else "inner val acc"]
    cols += ["noisy labels memorized"] if noisy else []
    cols += ["final strength", "lr-weighted strength", "compute (× grid)", "model-epochs"]
    body = []
    for r in rows:
        row = [r["row"], Pct(r["val_acc"]), f"{pct(r['val_acc_ci_low'])} – {pct(r['val_acc_ci_high'])}",
               Points(_num(r["delta_val_acc"])), _num(r["p_value"]), *pcts(r["test_acc"], r["inner_val_acc"])]
        row += [Pct(r["noisy_memorized"])] if noisy else []
        row += [r["final_strength"], _num(r.get("lr_weighted_strength")), r["compute"], int(r["model_epochs"])]
        body.append(row)
    out.append(table(cols, body, best=ref))
    return out


def _num(v) -> float:
    return float("nan") if v is None or not np.isfinite(v) else float(v)


def _intro(result: dict, noisy: bool, g: dict) -> str:
    text = (f"{result['folds']}-fold cross-validation; every member trains on its fold's training part less an "
            f"inner validation split ({pct(result['inner_fraction'])}), on which PBT ranks, gap feedback steers "
            f"and one member per fold is chosen. Validation accuracy is on the held-out fold"
            + (" (clean labels)" if noisy else "") + ", which no decision sees, except for 'grid (best on CV)': "
            "the grid point with the best mean CV accuracy, optimistic by construction and the bar the rest are "
            "held to (Δ and p: Nadeau–Bengio corrected paired t-test). Compute is in model-epochs, as a "
            f"multiple of the grid's. PBT exploits every {result['period']} epoch(s), gap feedback steps every "
            f"{result.get('gap_period', result['period'])}.")
    text += "".join(f" {capital(line)}." for line in goal_lines(g))
    return text
