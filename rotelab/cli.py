"""The ``rotelab`` command: parses, calls the library, renders with rich. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

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
LabelColumn = Annotated[Optional[str], typer.Option("--label-column", help="CSV data: the column holding the labels (default 'label').")]


def pct(v: float) -> str:
    """0.953 -> '95.3%'."""
    return "–" if v != v else f"{100 * v:.1f}%"


def main(argv: list[str] | None = None) -> None:
    """Entry point: a RotelabError is one line on stderr and exit code 2, never a traceback."""
    import rotelab.commands  # noqa: F401  (registers the commands on `app`)

    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="rotelab", standalone_mode=True)
    except RotelabError as exc:
        err.print(f"Error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # `python -m rotelab.cli`: run the registered app, not this copy
    from rotelab.cli import main as _main

    _main()
