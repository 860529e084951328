"""`rotelab compare`: techniques that reduce memorization, compared by k-fold cross-validation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rotelab.cli import (
    Batch, Data, Depth, Device, Dropout, Epochs, Json, LabelColumn, LabelNoise, Lr, Model, Optim, RunsDir, Seed,
    TrainSize, Width, app, out, pct,
)
from rotelab.studies.compare import DEFAULT_TECHNIQUES

Techniques = Annotated[str, typer.Option(
    "--techniques", help="Comma-separated cells; techniques joined by + with optional strengths, "
                         "e.g. baseline,l2=0.1,augment+dropout=0.3.")]
Folds = Annotated[int, typer.Option("--folds", help="Stratified folds (1 = a single 80/20 train/validation split).")]
Repeats = Annotated[int, typer.Option("--repeats", help="Repeats of the k-fold, each with its own shuffle.")]


def pp(v: float) -> str:
    """A signed change in percentage points: 0.031 -> '+3.1'."""
    return "–" if math.isnan(v) else f"{100 * v:+.1f}"


def pvalue(p: float) -> str:
    return "–" if math.isnan(p) else ("<0.001" if p < 1e-3 else f"{p:.3f}")


@app.command()
def compare(
    data: Data = "digits",
    model: Model = "mlp",
    techniques: Techniques = DEFAULT_TECHNIQUES,
    folds: Folds = 5,
    repeats: Repeats = 1,
    epochs: Epochs = None,
    train_size: TrainSize = None,
    label_noise: LabelNoise = 0.0,
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
    """Which technique reduces memorization? A k-fold table, one row a technique, tested against baseline."""
    from rotelab.studies.compare import compare as run

    if label_column is not None:
        from rotelab.studies.common import resolve_data

        data = resolve_data(data, label_column=label_column)

    r = run(data, model, techniques=techniques, folds=folds, repeats=repeats, epochs=epochs, train_size=train_size,
            label_noise=label_noise, width=width, depth=depth, dropout=dropout, lr=lr, batch_size=batch_size,
            optimizer=optimizer, device=device, seed=seed, runs_dir=runs_dir, progress=not json_out)
    if json_out:
        print(json.dumps(r.to_dict(), indent=2))
        return
    render(r)


def render(r) -> None:
    if r.defaults:
        d = Table(title="technique defaults (override with name=value)", title_justify="left")
        for col in ("technique", "default", "meaning"):
            d.add_column(col)
        for row in r.defaults:
            d.add_row(row["name"], str(row["default"]), row["meaning"])
        out.print(d)
    ds = r.dataset
    noisy = "noisy_memorized" in r.table.columns
    deltas = "delta_val_acc" in r.table.columns
    split = f"{r.folds}-fold" if r.folds > 1 else "80/20 split"
    title = (f"compare {ds['name']} ({ds['n_train']} train / {ds['n_test']} test) · {r.model} · {r.epochs} epochs · "
             f"{split}{f' × {r.repeats}' if r.repeats > 1 else ''}"
             f"{f' · label noise {pct(r.label_noise)} in the training folds' if noisy else ''}")
    t = Table(title=title)
    t.add_column("technique", no_wrap=True)
    t.add_column("clean val acc ±95% CI" if noisy else "val acc ±95% CI", justify="right", no_wrap=True)
    for col in ("train acc", "gap acc", "gap loss", "test acc"):
        t.add_column(col, justify="right")
    if noisy:
        t.add_column("noisy labels memorized", justify="right")
    if deltas:
        t.add_column("Δ val acc (pp)", justify="right")
        t.add_column("p", justify="right")
    t.add_column("model-epochs", justify="right")
    for row in r.table.to_dict(orient="records"):
        half = (row["val_acc_ci_high"] - row["val_acc_ci_low"]) / 2
        ci = "" if math.isnan(half) else f" ±{100 * half:.1f}"
        cells = [row["technique"] + (" ★ best" if row["best"] else ""), pct(row["val_acc"]) + ci,
                 pct(row["train_acc"]), pct(row["acc_gap"]), f"{row['loss_gap']:.3f}", pct(row["test_acc"])]
        if noisy:
            cells.append(pct(row["noisy_memorized"]))
        if deltas:
            base = row["technique"] == r.baseline
            cells += ["" if base else pp(row["delta_val_acc"]), "" if base else pvalue(row["p_value"])]
        cells.append(str(row["model_epochs"]))
        t.add_row(*cells, style="bold green" if row["best"] else None)
    out.print(t)
    notes = ["gap acc = train − validation accuracy; gap loss = validation − train loss"]
    if noisy:
        notes.append("validation scored on clean labels; train accuracy on the labels trained on (flipped included)")
    if deltas:
        ratio = f"{r.test_train_ratio:.3g}"
        notes.append(f"Δ, p: against {r.baseline}, fold by fold; Nadeau–Bengio corrected paired t-test "
                     f"(n_test/n_train = {ratio})")
    for n in notes:
        out.print(f"[dim]{n}[/dim]")
    out.print(f"[dim]study: {r.study_dir}  (table.csv, result.json)[/dim]")
