"""Report section for ``sweep``: the gap against training-set size and against width."""

from __future__ import annotations

from pathlib import Path

from rotelab.errors import StoreError
from rotelab.report.blocks import Pct, Points, figure, pcts, table


def _png(path: Path, stored: str) -> bytes:
    f = path / Path(stored).name  # stored paths may be absolute; the study may have moved
    try:
        return f.read_bytes()
    except OSError:
        raise StoreError(f"{f}: missing figure; rerun the sweep") from None


def blocks(study: dict, result: dict, path: Path) -> list[dict]:
    out: list[dict] = []
    noisy = result.get("label_noise", 0) > 0
    for key, axis, caption in (("sizes", "train_size", "training-set size"), ("widths", "width", "model width")):
        rows = result.get(key)
        if not rows:  # a sweep of one axis only
            continue
        out.append({"kind": "heading", "text": f"Gap against {caption}"})
        out.append(figure(_png(path, result["figures"][key]),
                          f"Train − validation gap against {caption} ({result['folds']}-fold mean and 95% CI)."))
        cols = [caption, "params", "train acc", "val acc", "acc gap (points)", "loss gap", "test acc"]
        if noisy:
            cols.append("noisy labels memorized")
        body = []
        for r in rows:
            row = [r[axis], r["params"], *pcts(r["train_acc"], r["val_acc"]), Points(r["acc_gap"]), r["loss_gap"],
                   Pct(r["test_acc"])]
            if noisy:
                row.append(Pct(r.get("noisy_memorized", float("nan"))))
            body.append(row)
        out.append(table(cols, body))
    return out
