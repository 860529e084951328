"""The ``rotelab`` command: parses, calls the library, renders with rich. No logic lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from rotelab.errors import RotelabError

app = typer.Typer(
    name="rotelab",
    help="What a PyTorch model memorized instead of learned: signs, scores, and what reduces it.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

# ── shared options ────────────────────────────────────────────────────────────────────
Data = Annotated[str, typer.Option("--data", help="Built-in dataset (digits, mnist1d, synthetic) or a dataset file.")]
Model = Annotated[str, typer.Option("--model", help="mlp, cnn (images) or cnn1d (sequences).")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", help="Epochs to train (default: by model family).")]
TrainSize = Annotated[Optional[int], typer.Option("--train-size", help="Keep a stratified subset of N training examples.")]
LabelNoise = Annotated[float, typer.Option("--label-noise", help="Flip this seeded fraction of training labels.")]
Width = Annotated[Optional[int], typer.Option("--width", help="Hidden units (mlp) or channels (cnn, cnn1d).")]
Depth = Annotated[Optional[int], typer.Option("--depth", help="Hidden layers (mlp) or conv layers.")]
Dropout = Annotated[float, typer.Option("--dropout", help="Dropout probability in the model.")]
Lr = Annotated[float, typer.Option("--lr", help="Learning rate.")]
Batch = Annotated[int, typer.Option("--batch-size", help="Examples per step, per model.")]
Optim = Annotated[str, typer.Option("--optimizer", help="adam or sgd.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for splits, noise and initialisation.")]
RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Where studies are stored.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


@app.command()
def datasets(json_out: Json = False) -> None:
    """List the built-in datasets with shapes, classes and sizes."""
    from rotelab.data import BUILTIN

    rows = [BUILTIN[name]().summary() for name in BUILTIN]
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="built-in datasets")
    for col in ("name", "kind", "features", "classes", "train", "test", "description"):
        table.add_column(col)
    for name, r in zip(BUILTIN, rows):
        table.add_row(name, r["kind"], "x".join(map(str, r["feature_shape"])), str(r["n_classes"]),
                      str(r["n_train"]), str(r["n_test"]), BUILTIN[name]().description)
    out.print(table)
    out.print("Also: any .npz file with arrays x, y (optional x_test, y_test, classes) via --data PATH.")


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
    json_out: Json = False,
) -> None:
    """Is the model memorizing? The three signs, the onset epoch and a verdict."""
    from rotelab.studies.diagnose import diagnose as run

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
        table.add_row(f"{row['epoch']}{mark}", _pct(row["train_acc"]), _pct(row["val_acc"]), _pct(row["test_acc"]),
                      f"{row['train_loss']:.3f}", f"{row['val_loss']:.3f}", _pct(row["train_acc"] - row["val_acc"]))
    out.print(table)
    f = r.final
    ok, no = "[red]yes[/red]", "[green]no[/green]"
    out.print(f"high train / low validation accuracy: {ok if r.signs['train_high_val_low'] else no}  "
              f"(train {_pct(f['train_acc'])}, validation {_pct(f['val_acc'])}, gap {_pct(f['acc_gap'])})")
    out.print(f"widening loss gap:                    {ok if r.signs['loss_gap_widening'] else no}  "
              f"(validation − train loss {f['loss_gap']:.3f})")
    out.print(f"poor on new data:                     {ok if r.signs['poor_on_new_data'] else no}  "
              f"(test accuracy {_pct(f['test_acc'])})")
    color = {"memorizing": "red", "healthy": "green", "underfitting": "yellow"}[r.verdict]
    onset = f", from epoch {r.onset_epoch} (validation loss stops falling while training loss falls)" \
        if r.onset_epoch is not None else ""
    out.print(f"verdict: [bold {color}]{r.verdict}[/bold {color}]{onset}")
    out.print(f"[dim]study: {r.study_dir}[/dim]")


def main(argv: list[str] | None = None) -> None:
    """Entry point: a RotelabError is one line on stderr and exit code 2, never a traceback."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="rotelab", standalone_mode=True)
    except RotelabError as exc:
        err.print(f"Error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
