"""``rotelab adapt``: adaptive regularization against a grid of fixed strengths, by k-fold CV."""

from __future__ import annotations

from typing import Any

from rotelab.commands.compare import pvalue
from rotelab.commands.options import out, pct, plus_minus, pp, study_command
from rotelab.commands.tables import Column, print_table
from rotelab.studies.adapt_goal import goal_lines


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
             Column("lr-weighted\nstrength"), Column("model-\nepochs")]
    rows = []
    for row in r.table.to_dict(orient="records"):
        ref = row["row"] == "grid (best on CV)"
        cells = [row["row"], pct(row["val_acc"]) + plus_minus(row, "val_acc"),
                 "" if ref else pp(row["delta_val_acc"]), f"{row['compute']:.3g}"]
        cells += [pct(row["noisy_memorized"])] if noisy else []
        cells += ["" if ref else pvalue(row["p_value"]), pct(row["test_acc"]), pct(row["inner_val_acc"]),
                  strength(row["final_strength"]), strength(row.get("lr_weighted_strength", float("nan"))),
                  str(row["model_epochs"])]
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
             "lr-weighted strength: Σ lr·λ / Σ lr over the epochs (the last epochs of a cosine schedule barely "
             "count)" + ("; awd rows: λ̄ of adaptive weight decay, not the grid's knob"
                         if r.table["row"].str.startswith("awd").any() else ""),
             f"PBT exploits every {r.period} epoch(s), gap feedback steps every {r.gap_period}; a replay retrains "
             "fresh members along the chosen member's strength schedule"]
    if r.label_noise:
        lines.append("inner val acc: on the labels trained on (flipped included), as the adaptive schemes and the "
                     "choice of members see them; val acc: on the clean labels")
    lines += goal_lines(r.goal)
    return lines


command = study_command("adapt", render, "Regularization that tunes itself while training (PBT, gap feedback, "
                                         "adaptive weight decay) against a grid of fixed strengths, by k-fold CV.")
