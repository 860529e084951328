"""``rotelab adapt``: adaptive regularization against a grid of fixed strengths, by k-fold CV."""

from __future__ import annotations

import math
from typing import Any

from rotelab.commands.compare import pvalue
from rotelab.commands.options import out, pct, pp, study_command
from rotelab.commands.tables import Column, print_table


def strength(v: float) -> str:
    return "–" if v is None or v != v else f"{v:.3g}"


def render(r: Any) -> None:
    ds, noisy = r.dataset, "noisy_memorized" in r.table.columns
    title = (f"adapt {ds['name']} ({ds['n_train']} train / {ds['n_test']} test) · {r.model} · {r.epochs} epochs · "
             f"{r.folds}-fold · {r.technique} over {strength(r.grid_values[0])}–{strength(r.grid_values[-1])} "
             f"({len(r.grid_values)} points)" + (f" · label noise {pct(r.label_noise)}" if noisy else ""))
    cols = [Column("row", key=True), Column(("clean " if noisy else "") + "val acc\n±95% CI", key=True),
            Column("Δ vs grid\n(points)", key=True), Column("compute\n(× grid)", key=True)]
    cols += [Column("noisy labels\nmemorized")] if noisy else []
    cols += [Column("p"), Column("test\nacc"), Column("inner\nval acc"), Column("final\nstrength"),
             Column("model-\nepochs")]
    rows = []
    for row in r.table.to_dict(orient="records"):
        half = (row["val_acc_ci_high"] - row["val_acc_ci_low"]) / 2
        ref = row["row"] == "grid (best on CV)"
        cells = [row["row"], pct(row["val_acc"]) + ("" if math.isnan(half) else f" ±{100 * half:.1f}"),
                 "" if ref else pp(row["delta_val_acc"]), f"{row['compute']:.3g}"]
        cells += [pct(row["noisy_memorized"])] if noisy else []
        cells += ["" if ref else pvalue(row["p_value"]), pct(row["test_acc"]), pct(row["inner_val_acc"]),
                  strength(row["final_strength"]), str(row["model_epochs"])]
        rows.append(cells)
    print_table(out, title, cols, rows)
    for line in notes(r):
        out.print(f"[dim]{line}[/dim]")
    out.print(f"[dim]study: {r.study_dir}  (table.csv, result.json)[/dim]")


def notes(r: Any) -> list[str]:
    lines = [f"every member trains on its fold's training part less an inner validation split "
             f"({pct(r.inner_fraction)}); adaptive schemes steer on it and it picks one member per fold",
             "grid (best on CV): the grid point with the best mean CV accuracy — optimistic, the bar the rest "
             "are held to; Δ and p against it, Nadeau–Bengio corrected paired t-test",
             "awd rows: final strength is λ̄ of adaptive weight decay, not the grid's knob",
             f"PBT exploits every {r.period} epoch(s), gap feedback steps every {r.gap_period}; a replay retrains "
             "fresh members along the chosen member's strength schedule"]
    for g in (r.goal, r.goal.get("nested")):
        if not g:
            continue
        for name, what in (("quarter", "≤ ¼ of the grid's compute, within 0.5 points of"),
                           ("equal", "≤ the grid's compute, above")):
            if g.get(name):
                b = g[name]
                p = b.get("p_value")
                lines.append(f"goal at {what} {g['reference']}: best {b['row']} {pct(b['val_acc'])} vs "
                             f"{pct(g['grid_best_val_acc'])} — {'met' if b['met'] else 'missed'} by "
                             f"{abs(b['margin_points']):.1f} points"
                             + ("" if p is None else f" (p = {p:.2g}; the best of {b['candidates']} adaptive rows)"))
    return lines


command = study_command("adapt", render, "Regularization that tunes itself while training (PBT, gap feedback, "
                                         "adaptive weight decay) against a grid of fixed strengths, by k-fold CV.")
