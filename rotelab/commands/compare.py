"""``rotelab compare``: techniques that reduce memorization, compared by k-fold cross-validation."""

from __future__ import annotations

import math
from typing import Any

from rotelab.commands.options import noise_note, num, out, pct, plus_minus, pp, study_command
from rotelab.commands.tables import Column, print_table
from rotelab.studies.compare_verdict import verdict


def pvalue(p: float) -> str:
    return "–" if math.isnan(p) else ("<0.001" if p < 1e-3 else f"{p:.3f}")


def render(r: Any) -> None:
    if r.defaults:
        print_table(out, "technique defaults (override with name=value)",
                    [Column("technique", key=True), Column("default", key=True, justify="left", wrap=True),
                     Column("meaning", justify="left", wrap=True)],
                    [[d["name"], str(d["default"]), d["meaning"]] for d in r.defaults])
    ds, noisy = r.dataset, "noisy_memorized" in r.table.columns
    deltas = "delta_val_acc" in r.table.columns
    split = f"{r.folds}-fold" if r.folds > 1 else "80/20 split"
    title = (f"compare {ds['name']} ({ds['n_train']} train / {ds['n_test']} test) · {r.model} · {r.epochs} epochs"
             f" · {split}{f' × {r.repeats}' if r.repeats > 1 else ''}"
             f"{f' · label noise {pct(r.label_noise)} in the training folds' if noisy else ''}")
    cols = [Column("technique", key=True), Column(("clean " if noisy else "") + "val acc\n±95% CI", key=True)]
    cols += [Column("noisy labels\nmemorized", key=True)] if noisy else []
    cols += [Column("Δ val acc\n(points)", key=True), Column("p", key=True)] if deltas else []
    cols += [Column("train\nacc"), Column("gap acc\n(points)"), Column("gap\nloss"), Column("test\nacc"),
             Column("model-\nepochs")]
    best = r.recommended
    rows, styles = [], []
    for row in r.table.to_dict(orient="records"):
        cells = [row["technique"] + (" ★" if row["technique"] == best else ""),
                 pct(row["val_acc"]) + plus_minus(row, "val_acc")]
        cells += [pct(row["noisy_memorized"])] if noisy else []
        if deltas:
            base = row["technique"] == r.baseline
            cells += ["" if base else pp(row["delta_val_acc"]), "" if base else pvalue(row["p_value"])]
        cells += [pct(row["train_acc"]), pp(row["acc_gap"]), num(row["loss_gap"]), pct(row["test_acc"]),
                  str(row["model_epochs"])]
        rows.append(cells)
        styles.append("bold green" if row["technique"] == best else None)
    print_table(out, title, cols, rows, styles=styles)
    for n in notes(r, noisy, deltas, best):
        out.print(f"[dim]{n}[/dim]")
    out.print(f"[dim]study: {r.study_dir}  (table.csv, result.json)[/dim]")


def notes(r: Any, noisy: bool, deltas: bool, best: str | None) -> list[str]:
    lines = ["gap acc = train − validation accuracy in percentage points; gap loss = validation − train loss"]
    if noisy:
        lines.append(noise_note(r.label_noise))
    if deltas:
        if r.table["p_value"].notna().any():
            lines.append(f"Δ, p: against {r.baseline}, fold by fold; Nadeau–Bengio corrected paired t-test "
                         f"(n_test/n_train = {r.test_train_ratio:.3g}), p of each cell alone"
                         + ("" if best is None else f"; ★ = recommended: the highest mean among the cells that beat "
                                                    f"{r.baseline} after Holm's adjustment for testing every cell"))
        lines.append(verdict(r.table.to_dict(orient="records"), r.baseline, best, r.best))
    return lines


command = study_command("compare", render, "Which technique reduces memorization? A k-fold table, one row a "
                                           "technique, tested against baseline.")
