"""`rotelab sweep`: the train−validation gap against training-set size and against width."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from rotelab.cli import (
    Batch, Data, Depth, Device, Dropout, Epochs, Json, LabelColumn, LabelNoise, Lr, Model, Optim, RunsDir, Seed,
    Width, app, out, pct,
)

Sizes = Annotated[str, typer.Option(
    "--train-sizes", help="Training-set sizes (stratified subsets of the pool), comma-separated; 'all' = the pool; "
                          "'' skips this curve.")]
Widths = Annotated[str, typer.Option(
    "--widths", help="Widths (hidden units / channels), comma-separated; '' skips this curve.")]
Folds = Annotated[int, typer.Option("--folds", help="Stratified folds per point.")]
DefaultSize = Annotated[Optional[int], typer.Option(
    "--train-size", help="Examples for the width curve (default: the whole pool).")]


@app.command()
def sweep(
    data: Data = "digits",
    model: Model = "mlp",
    train_sizes: Sizes = "100,300,1000,all",
    widths: Widths = "32,128,512",
    folds: Folds = 3,
    train_size: DefaultSize = None,
    label_noise: LabelNoise = 0.0,
    epochs: Epochs = None,
    width: Width = None,
    depth: Depth = None,
    dropout: Dropout = 0.0,
    lr: Lr = 1e-2,
    batch_size: Batch = 100,
    optimizer: Optim = "adam",
    device: Device = "auto",
    seed: Seed = 0,
    runs_dir: RunsDir = Path("runs"),
    label_column: LabelColumn = None,
    json_out: Json = False,
) -> None:
    """The causes of memorization as curves: gap vs training-set size and vs model width."""
    from rotelab.studies.sweep import sweep as run

    if label_column is not None:
        from rotelab.studies.common import resolve_data

        data = resolve_data(data, label_column=label_column)

    r = run(data, model, train_sizes=train_sizes or None, widths=widths or None, folds=folds, train_size=train_size,
            label_noise=label_noise, epochs=epochs, width=width, depth=depth, dropout=dropout, lr=lr,
            batch_size=batch_size, optimizer=optimizer, device=device, seed=seed, runs_dir=runs_dir,
            progress=not json_out)
    if json_out:
        print(json.dumps(r.to_dict(), indent=2))
        return
    d = r.dataset
    noise = f" · label noise {pct(r.label_noise)}" if r.label_noise else ""
    if r.sizes is not None:
        _table(r.sizes, "train_size", "train size",
               f"gap vs training-set size · {d['name']} · {r.model} width {r.default_width} · {r.folds}-fold{noise}")
    if r.widths is not None:
        _table(r.widths, "width", "width",
               f"gap vs width · {d['name']} · {r.model} on {r.default_size} examples · {r.folds}-fold{noise}")
    out.print("[dim]gap acc = train − validation accuracy; gap loss = validation − train loss; "
              "validation on clean labels[/dim]")
    for name, path in r.figures.items():
        out.print(f"[dim]figure ({name}): {path}[/dim]")
    out.print(f"[dim]study: {r.study_dir}[/dim]")


def _table(t, key: str, header: str, title: str) -> None:
    noisy = "noisy_memorized" in t.columns
    table = Table(title=title)
    for col in (header, "params", "train acc", "val acc", "gap acc ±95% CI", "gap loss", "test acc"):
        table.add_column(col, justify="right", no_wrap=col.startswith("gap acc"))
    if noisy:
        table.add_column("noisy labels memorized", justify="right")
    table.add_column("model-epochs", justify="right")
    for row in t.to_dict(orient="records"):
        half = (row["acc_gap_ci_high"] - row["acc_gap_ci_low"]) / 2
        cells = [str(row[key]), f"{row['params']:,}", pct(row["train_acc"]), pct(row["val_acc"]),
                 pct(row["acc_gap"]) + ("" if math.isnan(half) else f" ±{100 * half:.1f}"), f"{row['loss_gap']:.3f}",
                 pct(row["test_acc"])]
        if noisy:
            cells.append(pct(row["noisy_memorized"]))
        cells.append(str(row["model_epochs"]))
        table.add_row(*cells)
    out.print(table)
