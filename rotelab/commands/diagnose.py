"""``rotelab diagnose``: the three signs, the onset epoch and a verdict."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from rotelab.commands.options import num, out, pct, pp, study_command
from rotelab.commands.tables import Column, print_table


def render(r: Any) -> None:
    d = r.dataset
    cols = [Column("epoch", key=True), Column("train\nacc", key=True), Column("val\nacc", key=True),
            Column("test\nacc", key=True), Column("gap acc\n(points)", key=True), Column("train\nloss"),
            Column("val\nloss")]
    rows = []
    for row in r.summary_rows():
        mark = " ◀ onset" if row["epoch"] == r.onset_epoch else ""
        rows.append([f"{row['epoch']}{mark}", pct(row["train_acc"]), pct(row["val_acc"]), pct(row["test_acc"]),
                     pp(row["train_acc"] - row["val_acc"]), num(row["train_loss"]), num(row["val_loss"])])
    print_table(out, f"diagnose {d['name']} ({d['n_train']} train / {d['n_test']} test) · {r.model} · "
                     f"mean of {r.seeds} seed(s)", cols, rows)
    if d.get("n_noisy"):
        out.print(f"[dim]{pct(d['n_noisy'] / d['n_train'])} of the training pool's labels flipped: validation and "
                  "test accuracy and loss are scored on the clean labels, train accuracy on the labels trained on "
                  "(flipped included)[/dim]")
    for line in sign_lines(r):
        out.print(line)
    color = {"memorizing": "red", "healthy": "green", "underfitting": "yellow"}[r.verdict]
    if r.onset_epoch is None:
        onset = ""
    elif r.verdict == "memorizing":
        onset = f", from epoch {r.onset_epoch} (validation loss stops falling while training loss still falls)"
    else:
        onset = f" (validation loss has crept up since epoch {r.onset_epoch})"
    strength = f" ({r.severity})" if r.severity else ""
    out.print(f"verdict: [bold {color}]{r.verdict}{strength}[/bold {color}]{onset}")
    t = r.thresholds
    if t:
        on = " on the clean labels" if "train_acc_clean" in r.final else ""
        out.print(f"[dim]memorizing = at least 2 of the 3 signs (strong when a gap reaches {100 * t['strong']:.0f} "
                  f"points); underfitting = training accuracy{on} below {100 * t['fit']:.0f}%; healthy "
                  "otherwise[/dim]")
    if r.note:
        out.print(f"[yellow]note:[/yellow] {escape(r.note)}; the third sign is not counted")
    out.print(f"[dim]study: {r.study_dir}[/dim]")


SIGNS = {"train_high_val_low": "high train, low validation accuracy", "loss_gap_widening": "widening loss gap",
         "poor_on_new_data": "poor on new data"}


def sign_lines(r: Any) -> list[str]:
    """Each sign, yes or no, with the numbers that decided it and their thresholds."""
    ok, no = "[red]yes[/red]", "[green]no[/green]"
    return [f"{label}: {ok if r.signs[name] else no}  ({escape(r.evidence.get(name, {}).get('text', ''))})"
            for name, label in SIGNS.items()]


command = study_command("diagnose", render, "Is the model memorizing? The three signs, the onset epoch and a verdict.")
