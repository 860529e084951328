"""Report section for ``sweep``: the gap against training-set size and against width."""

from __future__ import annotations

from pathlib import Path

from rotelab.errors import StoreError
from rotelab.report.blocks import Pct, Points, figure, pct, pcts, points, table


def _png(path: Path, stored: str) -> bytes:
    f = path / Path(stored).name  # stored paths may be absolute; the study may have moved
    try:
        return f.read_bytes()
    except OSError:
        raise StoreError(f"{f}: missing figure; rerun the sweep") from None


def _ci(row: dict, name: str, fmt) -> str:
    """'97.1% – 100.0%': the 95% CI of ``row[name]`` across folds (older studies lack it: '–')."""
    lo, hi = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    return "–" if lo is None or hi is None or lo != lo else f"{fmt(lo)} – {fmt(hi)}"


def blocks(study: dict, result: dict, path: Path) -> list[dict]:
    out: list[dict] = []
    noisy = result.get("label_noise", 0) > 0
    if noisy:
        q = result["label_noise"]
        out.append({"kind": "text", "text": (
            f"{100 * q:.0f}% of the training labels were flipped. Validation is scored on the clean labels, train "
            f"accuracy on the labels trained on (flipped included), so a model that fits none of the flipped labels "
            f"has a gap near −{100 * q:.0f} points; 'noisy labels memorized' is the share of the flips it fits.")})
    for key, axis, caption in (("sizes", "train_size", "training-set size"), ("widths", "width", "model width")):
        rows = result.get(key)
        if not rows:  # a sweep of one axis only
            continue
        out.append({"kind": "heading", "text": f"Gap against {caption}"})
        out.append(figure(_png(path, result["figures"][key]),
                          f"Train − validation gap against {caption} ({result['folds']}-fold mean and 95% CI)."))
        cols = [caption, "params", "train acc", "val acc", "95% CI", "acc gap (points)", "95% CI", "loss gap",
                "test acc"]
        if noisy:
            cols.append("noisy labels memorized")
        body = []
        for r in rows:
            row = [r[axis], r["params"], *pcts(r["train_acc"], r["val_acc"]), _ci(r, "val_acc", pct),
                   Points(r["acc_gap"]), _ci(r, "acc_gap", points), r["loss_gap"], Pct(r["test_acc"])]
            if noisy:
                row.append(Pct(r.get("noisy_memorized", float("nan"))))
            body.append(row)
        out.append(table(cols, body))
    return out
