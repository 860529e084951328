"""`rotelab memorization`: per-example memorization scores and membership inference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from rotelab.cli import (
    Batch, Data, Depth, Device, Dropout, Epochs, Json, LabelColumn, LabelNoise, Lr, Model, Optim, RunsDir, Seed,
    TrainSize, Width, app, out, pct,
)

ATTACK_NAMES = {"loss": "loss threshold", "lira_online": "LiRA online", "lira_offline": "LiRA offline"}


@app.command()
def memorization(
    data: Data = "mnist1d",
    model: Model = "mlp",
    models: Annotated[int, typer.Option("--models", help="Subset models to train (more = tighter estimates).")] = 256,
    subset: Annotated[float, typer.Option(
        "--subset", help="Fraction of the training pool each model trains on, in (0, 1).")] = 0.7,
    techniques: Annotated[Optional[str], typer.Option(
        "--techniques", help="Comma-separated technique cells, e.g. baseline,dropout,l2 (default: baseline).")] = None,
    epochs: Epochs = None,
    train_size: TrainSize = None,
    label_noise: LabelNoise = 0.0,
    chunk: Annotated[int, typer.Option("--chunk", help="Models per stored job (an interrupt loses at most one).")] = 64,
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
    """Which examples are memorized (Feldman-Zhang scores) and how well membership leaks (loss, LiRA)."""
    from rotelab.studies.memorization import memorization as run

    if label_column is not None:
        from rotelab.studies.common import resolve_data

        data = resolve_data(data, label_column=label_column)

    r = run(data, model, models=models, subset=subset, techniques=techniques, epochs=epochs, train_size=train_size,
            label_noise=label_noise, width=width, depth=depth, dropout=dropout, lr=lr, batch_size=batch_size,
            optimizer=optimizer, device=device, seed=seed, runs_dir=runs_dir, chunk=chunk, progress=not json_out)
    if json_out:
        print(json.dumps(r.to_dict(), indent=2))
        return
    d = r.dataset
    head = (f"{d['name']} ({d['n_train']} train / {d['n_test']} test) · {r.model} · {r.models} models "
            f"on {r.subset:g} of the pool · {r.epochs} epochs")
    out.print(f"[bold]memorization[/bold] · {head}")
    if len(r.cells) > 1:
        out.print(_comparison(r))
    for cell in r.cells:
        s = r.summaries[cell]
        out.print(_distribution(s, f"memorization scores · {cell}"))
        q, acc = s["quantiles"], s["accuracy"]
        out.print(f"score mean {s['mean_score']:.3f} · median {q['median']:.3f} · p90 {q['p90']:.3f} · "
                  f"p99 {q['p99']:.3f} · above 0.5: {pct(s['share_above_0_5'])}; accuracy on own subset "
                  f"{pct(acc['train'])}, on held-out pool {pct(acc['held_out'])}, on test {pct(acc['test'])}")
        out.print(_top(s, r.dataset["classes"], f"most memorized · {cell}"))
        stab = _num(s["split_half_correlation"])
        out.print(f"stability: scores from two disjoint halves of the models correlate at r = [bold]{stab}[/bold] "
                  f"(mean standard error {s['mean_stderr']:.3f})")
        if s["flipped_auc_score"] is not None:
            out.print(f"flipped labels ({s['n_flipped']}): ROC AUC of the score for \"was flipped\" "
                      f"{_num(s['flipped_auc_score'])}, of the LiRA vulnerability "
                      f"{_num(s['flipped_auc_vulnerability'])}")
        out.print(_attacks(s, f"membership inference · {cell}"))
    out.print(f"[dim]study: {r.study_dir} ({r.jobs_trained} job(s) trained, {r.jobs_reused} reused)[/dim]")


def _distribution(s: dict, title: str) -> Table:
    t = Table(title=title)
    t.add_column("score", justify="right")
    t.add_column("examples", justify="right")
    t.add_column("share", justify="right")
    edges, counts = s["histogram"]["edges"], s["histogram"]["counts"]
    total = max(sum(counts), 1)
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        label = f"< {hi:g}" if i == 0 else (f"≥ {lo:g}" if i == len(counts) - 1 else f"{lo:g} – {hi:g}")
        t.add_row(label, str(c), pct(c / total))
    return t


def _num(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def _label(classes: list[str], i: int) -> str:
    return classes[i] if 0 <= i < len(classes) else "–"


def _top(s: dict, classes: list[str], title: str) -> Table:
    t = Table(title=title)
    for col in ("example", "given label", "predicted (held out)", "score", "± stderr", "flipped"):
        t.add_column(col, justify="right")
    for row in s["top_memorized"]:
        t.add_row(str(row["index"]), _label(classes, row["given_label"]), _label(classes, row["predicted_label"]),
                  f"{row['score']:.3f}", f"{row['stderr']:.3f}", "yes" if row["flipped"] else "")
    return t


def _attacks(s: dict, title: str) -> Table:
    t = Table(title=title)
    for col in ("attack", "ROC AUC", "TPR @ 0.1% FPR", "TPR @ 1% FPR"):
        t.add_column(col, justify="right" if col != "attack" else "left")
    for name, a in s["attacks"].items():
        t.add_row(ATTACK_NAMES.get(name, name), f"{a['auc']:.3f}", pct(a["tpr_at_0_1pct"]), pct(a["tpr_at_1pct"]))
    variance = "one variance shared by all examples (few shadows)" if s["lira_fixed_variance"] \
        else "per-example variances"
    t.caption = f"each model the target, the other {s['n_models'] - 1} the shadows; LiRA with {variance}"
    return t


def _comparison(r) -> Table:
    t = Table(title="by technique (same subsets and seeds)")
    t.add_column("technique", no_wrap=True)
    for col in ("mean\nscore", "score\n> 0.5", "split\nr", "test\nacc", "loss TPR\n@ 1%", "LiRA TPR\n@ 0.1%",
                "LiRA TPR\n@ 1%", "LiRA\nAUC"):
        t.add_column(col, justify="right")
    for cell in r.cells:
        s = r.summaries[cell]
        lira, loss = s["attacks"][s["headline_attack"]], s["attacks"]["loss"]
        t.add_row(cell, f"{s['mean_score']:.3f}", pct(s["share_above_0_5"]), _num(s["split_half_correlation"]),
                  pct(s["accuracy"]["test"]), pct(loss["tpr_at_1pct"]), pct(lira["tpr_at_0_1pct"]),
                  pct(lira["tpr_at_1pct"]), f"{lira['auc']:.3f}")
    return t
