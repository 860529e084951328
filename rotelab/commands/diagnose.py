"""`rotelab diagnose`: the three signs, the onset epoch and a verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rotelab.cli import (
    Batch, Data, Depth, Device, Dropout, Epochs, Json, LabelColumn, LabelNoise, Lr, Model, Optim, RunsDir, Seed,
    TrainSize, Width, app, out, pct,
)


@app.command()
def diagnose(
    data: Data = "mnist1d",
    model: Model = "mlp",
    epochs: Epochs = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Models trained (each with its own split and seed).")] = 3,
    train_size: TrainSize = None,
    label_noise: LabelNoise = 0.0,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of the training pool held out for validation.")] = 0.2,
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
    """Is the model memorizing? The three signs, the onset epoch and a verdict."""
    from rotelab.studies.diagnose import diagnose as run

    if label_column is not None:
        from rotelab.studies.common import resolve_data

        data = resolve_data(data, label_column=label_column)
    r = run(data, model, epochs=epochs, seeds=seeds, train_size=train_size, label_noise=label_noise,
            val_fraction=val_fraction, width=width, depth=depth, dropout=dropout, lr=lr, batch_size=batch_size,
            optimizer=optimizer, device=device, seed=seed, runs_dir=runs_dir, progress=not json_out)
    if json_out:
        print(json.dumps(r.to_dict(), indent=2))
        return
    d = r.dataset
    table = Table(title=f"diagnose {d['name']} ({d['n_train']} train / {d['n_test']} test) · {r.model} · "
                        f"mean of {r.seeds} seed(s)")
    for col in ("epoch", "train acc", "val acc", "test acc", "train loss", "val loss", "gap (acc)"):
        table.add_column(col, justify="right")
    for row in r.summary_rows():
        mark = " ◀ onset" if row["epoch"] == r.onset_epoch else ""
        table.add_row(f"{row['epoch']}{mark}", pct(row["train_acc"]), pct(row["val_acc"]), pct(row["test_acc"]),
                      f"{row['train_loss']:.3f}", f"{row['val_loss']:.3f}", pct(row["train_acc"] - row["val_acc"]))
    out.print(table)
    f = r.final
    ok, no = "[red]yes[/red]", "[green]no[/green]"
    out.print(f"high train / low validation accuracy: {ok if r.signs['train_high_val_low'] else no}  "
              f"(train {pct(f['train_acc'])}, validation {pct(f['val_acc'])}, gap {pct(f['acc_gap'])})")
    out.print(f"widening loss gap:                    {ok if r.signs['loss_gap_widening'] else no}  "
              f"(validation − train loss {f['loss_gap']:.3f})")
    out.print(f"poor on new data:                     {ok if r.signs['poor_on_new_data'] else no}  "
              f"(test accuracy {pct(f['test_acc'])})")
    color = {"memorizing": "red", "healthy": "green", "underfitting": "yellow"}[r.verdict]
    if r.onset_epoch is None:
        onset = ""
    elif r.verdict == "memorizing":
        onset = f", from epoch {r.onset_epoch} (validation loss stops falling while training loss still falls)"
    else:
        onset = f" (validation loss has crept up since epoch {r.onset_epoch})"
    strength = f" ({r.severity})" if r.severity else ""
    out.print(f"verdict: [bold {color}]{r.verdict}{strength}[/bold {color}]{onset}")
    out.print(f"[dim]study: {r.study_dir}[/dim]")
