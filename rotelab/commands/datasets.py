"""`rotelab datasets`: what is built in, or what a dataset file holds."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from rotelab.cli import Json, LabelColumn, app, out


@app.command()
def datasets(
    path: Annotated[Optional[str], typer.Argument(help="A dataset file or folder to inspect.")] = None,
    label_column: LabelColumn = None,
    json_out: Json = False,
) -> None:
    """List the built-in datasets, or report what a dataset file holds (format, shape, classes, counts)."""
    from rotelab.data import BUILTIN
    from rotelab.data.files import FORMAT_HELP
    from rotelab.studies.common import resolve_data

    if path is not None:
        ds = resolve_data(path, label_column=label_column)
        summary = ds.summary()
        summary["train_counts"] = [int(c) for c in
                                   __import__("numpy").bincount(ds.y_train, minlength=ds.n_classes)]
        if json_out:
            print(json.dumps(summary, indent=2))
            return
        info = ds.info
        out.print(f"[bold]{path}[/bold]: {info.get('format', 'dataset')} · {ds.kind} features "
                  f"{'x'.join(map(str, ds.feature_shape))} · {ds.n_classes} classes · "
                  f"{ds.n_train} train / {ds.n_test} test (test split: {info.get('test_split', 'given')})")
        table = Table()
        table.add_column("class")
        table.add_column("train examples", justify="right")
        for name, count in zip(ds.classes, summary["train_counts"]):
            table.add_row(name, str(count))
        out.print(table, markup=False)
        return
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
    out.print("Files: --data PATH reads these formats, detected from the path and its contents:")
    for fmt, text in FORMAT_HELP.items():
        out.print(f"  {fmt:12s} {text}", markup=False, highlight=False)
