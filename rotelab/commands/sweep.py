"""``rotelab sweep``: the train−validation gap against training-set size and against width."""

from __future__ import annotations

from typing import Any

from rotelab.commands.options import noise_note, num, out, pct, plus_minus, pp, study_command
from rotelab.commands.tables import Column, print_table


def render(r: Any) -> None:
    d = r.dataset
    noise = f" · label noise {pct(r.label_noise)}" if r.label_noise else ""
    if r.sizes is not None:
        _table(r.sizes, "train_size", "train\nsize",
               f"gap vs training-set size · {d['name']} · {r.model} width {r.default_width} · {r.folds}-fold{noise}")
    if r.widths is not None:
        _table(r.widths, "width", "width",
               f"gap vs width · {d['name']} · {r.model} on {r.default_size} examples · {r.folds}-fold{noise}")
    out.print("[dim]gap acc = train − validation accuracy in percentage points; gap loss = validation − train "
              "loss[/dim]")
    if r.label_noise:
        out.print(f"[dim]{noise_note(r.label_noise)}[/dim]")
    for name, path in r.figures.items():
        out.print(f"[dim]figure ({name}): {path}[/dim]")
    out.print(f"[dim]study: {r.study_dir}[/dim]")


def _table(t: Any, key: str, header: str, title: str) -> None:
    noisy = "noisy_memorized" in t.columns
    cols = [Column(header, key=True), Column("gap acc (points)\n±95% CI", key=True), Column("val\nacc", key=True)]
    cols += [Column("noisy labels\nmemorized", key=True)] if noisy else []
    cols += [Column("params"), Column("train\nacc"), Column("gap\nloss"), Column("test\nacc"),
             Column("model-\nepochs")]
    rows = []
    for row in t.to_dict(orient="records"):
        cells = [str(row[key]), pp(row["acc_gap"]) + plus_minus(row, "acc_gap"),
                 pct(row["val_acc"])]
        cells += [pct(row["noisy_memorized"])] if noisy else []
        cells += [f"{row['params']:,}", pct(row["train_acc"]), num(row["loss_gap"]), pct(row["test_acc"]),
                  str(row["model_epochs"])]
        rows.append(cells)
    print_table(out, title, cols, rows)


command = study_command("sweep", render, "The causes of memorization as curves: gap vs training-set size and vs "
                                         "model width.")
