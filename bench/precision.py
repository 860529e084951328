"""Part 6: bf16 against fp32: accuracy over many members, and time, for the decision on the
default precision (bf16 on a GPU only when it costs at most 0.3 points on digits and MNIST-1D)."""

from __future__ import annotations

import time
import warnings

import numpy as np

#: bf16 may become the GPU default only when no dataset loses more than this (points of accuracy)
MAX_COST_POINTS = 0.3


def run(device: str, *, repeats: int = 2, folds: int = 5, epochs: int | None = None) -> list[dict]:
    """Validation accuracy of every member (``folds`` × ``repeats`` per dataset) in fp32 and bf16."""
    import tempfile

    import rotelab

    rows = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # bf16 on a CPU is what this part measures on purpose (its note says which bf16 it was)
        warnings.filterwarnings("ignore", message="precision bf16 on the CPU")
        for data, model in (("digits", "mlp"), ("mnist1d", "mlp"), ("digits", "cnn")):
            accs = {}
            for precision in ("fp32", "bf16"):
                t0 = time.perf_counter()
                r = rotelab.compare(data, model, techniques="baseline", folds=folds, repeats=repeats, epochs=epochs,
                                    precision=precision, device=device, runs_dir=tmp)
                accs[precision] = (np.asarray(r.per_fold["baseline"]["val_acc"]), time.perf_counter() - t0)
            diff = accs["bf16"][0] - accs["fp32"][0]  # paired: the same folds and seeds
            rows.append({"data": data, "model": model, "members": len(diff),
                         "fp32": float(accs["fp32"][0].mean()), "bf16": float(accs["bf16"][0].mean()),
                         "diff_points": float(100 * diff.mean()),
                         "diff_se_points": float(100 * diff.std(ddof=1) / np.sqrt(len(diff))),
                         "fp32_s": accs["fp32"][1], "bf16_s": accs["bf16"][1]})
    return rows


def decision(rows: list[dict]) -> str:
    """What the rows say about the GPU default: every row counts (the rule names datasets, not models)."""
    worst = min(rows, key=lambda r: r["diff_points"])
    where = f"{worst['model']} on {worst['data']}"
    if worst["diff_points"] >= 0:
        return "bf16 loses nothing on any row: it may be the GPU default"
    if worst["diff_points"] >= -MAX_COST_POINTS:
        return f"bf16 loses at most {-worst['diff_points']:.2f} points ({where}): it may be the GPU default"
    return f"bf16 loses {-worst['diff_points']:.2f} points on {where}: fp32 stays the default"


def markdown(rows: list[dict], device: str) -> list[str]:
    lines = ["## 6. bf16 against fp32\n",
             f"Validation accuracy of the same members (same folds, seeds and batches) trained in fp32 and with "
             f"`--precision bf16` (the forward pass under bf16 autocast; weights and Adam state fp32), on {device}. "
             f"Difference = bf16 − fp32, mean ± s.e. over the members. Rule: bf16 becomes the GPU default only if "
             f"no dataset loses more than {MAX_COST_POINTS} points.\n",
             "| data | model | members | fp32 | bf16 | difference (points) | fp32 s | bf16 s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['model']} | {r['members']} | {100 * r['fp32']:.2f}% | {100 * r['bf16']:.2f}% "
                     f"| **{r['diff_points']:+.2f}** ± {r['diff_se_points']:.2f} | {r['fp32_s']:.1f} | {r['bf16_s']:.1f} |")
    return lines + ["", f"Decision: {decision(rows)}.", ""]
