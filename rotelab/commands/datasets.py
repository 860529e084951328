"""``rotelab datasets``: what is built in, or what a dataset file holds."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from rotelab.commands.options import out
from rotelab.commands.tables import Column, print_table


def command(
    path: Annotated[Optional[str], typer.Argument(help="A dataset file or folder to inspect.")] = None,
    label_column: Annotated[Optional[str], typer.Option(
        "--label-column", help="CSV files: the column that holds the labels (default 'label').")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print as JSON on stdout")] = False,
) -> None:
    """List the built-in datasets, or report what a dataset file holds (format, shape, classes, counts)."""
    if path is None:
        _builtins(json_out)
        return
    import warnings

    import numpy as np
    from rich.text import Text

    from rotelab.data import feature_warnings, load_dataset
    from rotelab.errors import DataWarning

    ds = load_dataset(path, **({"label_column": label_column} if label_column else {}))
    lines = feature_warnings(ds, standardize=ds.kind == "vector")  # what a study with the defaults says
    for line in lines:
        warnings.warn(line, DataWarning, stacklevel=2)
    summary = {**ds.summary(), "warnings": lines}
    summary["train_counts"] = [int(c) for c in np.bincount(ds.y_train, minlength=ds.n_classes)]
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    info = ds.info
    out.print(Text.assemble((str(path), "bold"), f": {info.get('format', 'dataset')} · {ds.kind} features "
                            f"{'x'.join(map(str, ds.feature_shape))} · {ds.n_classes} classes · "
                            f"{ds.n_train} train / {ds.n_test} test (test split: {info.get('test_split', 'given')})"))
    print_table(out, "", [Column("class", key=True), Column("train examples", key=True)],
                [[name, str(count)] for name, count in zip(ds.classes, summary["train_counts"])])


def _builtins(json_out: bool) -> None:
    from rotelab.data import BUILTIN
    from rotelab.data.files import FORMAT_HELP

    rows = [BUILTIN[name]().summary() for name in BUILTIN]
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    print_table(out, "built-in datasets",
                [Column("name", key=True), Column("kind", key=True, justify="left"), Column("features", key=True),
                 Column("classes"), Column("train"), Column("test"), Column("description", justify="left", wrap=True)],
                [[name, r["kind"], "x".join(map(str, r["feature_shape"])), str(r["n_classes"]), str(r["n_train"]),
                  str(r["n_test"]), BUILTIN[name]().description] for name, r in zip(BUILTIN, rows)])
    out.print("Files: --data PATH reads these formats, detected from the path and its contents:")
    for fmt, text in FORMAT_HELP.items():
        out.print(f"  {fmt:12s} {text}", markup=False, highlight=False)
