"""Report section for ``compare``: techniques by k-fold cross-validation, chart and sortable table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rotelab.report import figures
from rotelab.report.blocks import Pct, Points, capital, figure, pct, pcts, table
from rotelab.studies.compare_verdict import verdict


def _design(result: dict, k: int) -> str:
    """What one row's job trained: its k members and the splits they are."""
    repeats = f" × {result['repeats']} repeats" if result.get("repeats", 1) > 1 else ""
    if result["folds"] > 1:
        return f"Each row is one engine job whose {k} members are the folds ({result['folds']}-fold{repeats})"
    if k == 1:
        return "Each row is one engine job of one model on an 80/20 train/validation split"
    return f"Each row is one engine job whose {k} members are 80/20 train/validation splits{repeats}"


def blocks(study: dict, result: dict, path: Path) -> list[dict]:
    rows = result["table"]
    noisy = "noisy_memorized" in rows[0]
    labels = [r["technique"] for r in rows]
    recommended = result.get("recommended") if result.get("baseline") else result.get("best")
    best = next((i for i, r in enumerate(rows) if r["technique"] == recommended), None)
    extra = {"noisy labels memorized": [r["noisy_memorized"] for r in rows]} if noisy else None
    k = result["folds"] * result.get("repeats", 1)
    out = [
        {"kind": "text", "text": (
            _design(result, k) + ", identical for every row. Validation accuracy is on "
            + ("the clean labels; the noise was injected into the training folds only." if noisy else "the held-out fold.")
            + (f" Δ and p are against {result['baseline']} ({'Nadeau–Bengio corrected resampled t-test' if result.get('test') == 'corrected_t' else 'paired t-test'})."
               if result.get("baseline") else "")
            + (f" {capital(verdict(rows, result['baseline'], recommended, result.get('best')))}."
               if result.get("baseline") else ""))},
        figure(figures.interval_bars(labels, [r["val_acc"] for r in rows], [r["val_acc_ci_low"] for r in rows],
                                     [r["val_acc_ci_high"] for r in rows], xlabel="validation accuracy (95% CI)",
                                     highlight=best, extra=extra),
               "Validation accuracy by technique, mean and 95% confidence interval across folds"
               + ("; the significantly best is orange." if best is not None else ".")
               + (" Diamonds: fraction of flipped training labels the model reproduces." if noisy else "")),
    ]
    cols = ["technique", "val acc", "95% CI", "train acc", "acc gap (points)", "loss gap", "test acc"]
    if noisy:
        cols.append("noisy labels memorized")
    if result.get("baseline"):
        cols += ["Δ val acc", "p", "p (Holm)"]
    cols.append("model-epochs")
    body = []
    for r in rows:
        row = [r["technique"] + (" ★" if r["technique"] == recommended else ""), Pct(r["val_acc"]),
               f"{pct(r['val_acc_ci_low'])} – {pct(r['val_acc_ci_high'])}", Pct(r["train_acc"]), Points(r["acc_gap"]),
               r["loss_gap"], Pct(r["test_acc"])]
        if noisy:
            row.append(Pct(r["noisy_memorized"]))
        if result.get("baseline"):
            d = r.get("delta_val_acc")
            row += [Points(d if d is not None and np.isfinite(d) else float("nan")),
                    *(float("nan") if r.get(k) is None else r[k] for k in ("p_value", "p_holm"))]
        row.append(int(r["model_epochs"]))
        body.append(row)
    out.append(table(cols, body, best=best))
    if result.get("defaults"):
        out.append({"kind": "heading", "text": "Technique defaults"})
        out.append(table(["technique", "default", "meaning"],
                         [[d["name"], d["default"], d["meaning"]] for d in result["defaults"]], sortable=False))
    return out
