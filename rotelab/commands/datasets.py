"""`rotelab datasets`: what is built in."""

from __future__ import annotations

import json

from rich.table import Table

from rotelab.cli import Json, app, out


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
