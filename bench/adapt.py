"""``python -m bench.adapt [--quick] [--seeds 0,1,2]``: ``rotelab adapt`` on MNIST-1D and on noisy
digits over several seeds, the mean table in ``bench/results_adapt.md``.

Goal (issue 16): an adaptive scheme within 0.5 points of the best fixed grid point's validation
accuracy at ≤ ¼ of the grid's compute, or better than it at equal compute.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.machine import machine, write_results

SETTINGS = {  # name -> the data and its arguments
    "digits 300, 20% noise": ("digits", {"train_size": 300, "label_noise": 0.2}),
    "MNIST-1D": ("mnist1d", {}),
}


def run(seeds: list[int], *, quick: bool = False) -> dict:
    import rotelab

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (data, kw) in SETTINGS.items():
            extra = {"epochs": 4, "grid": 4, "folds": 2} if quick else {}
            tables = [rotelab.adapt(data, "mlp", seed=s, runs_dir=tmp, **kw, **extra).table for s in seeds]
            out[name] = _mean_table(tables)
    return out


def _mean_table(tables: list) -> list[dict]:
    """Each row's mean over the seeds (val, Δ against grid (best on CV), test, noisy fit, compute)."""
    rows = []
    for i, label in enumerate(tables[0]["row"]):
        pick = [t.iloc[i] for t in tables]
        row = {"row": label, "compute": float(pick[0]["compute"])}
        for col in ("val_acc", "delta_val_acc", "test_acc", "noisy_memorized"):
            if col in tables[0]:
                row[col] = float(np.nanmean([float(p[col]) for p in pick]))
        rows.append(row)
    return rows


def report(res: dict, info: dict, seeds: list[int]) -> str:
    lines = ["# rotelab adapt: adaptive regularization against a grid of fixed strengths\n",
             f"{info['date']} · {info['cpu']} · torch {info['torch']} · `python -m bench.adapt` · seeds "
             f"{', '.join(map(str, seeds))}\n",
             "mlp, 5 folds, weight decay over 0.01–10 (8 grid points), defaults of `rotelab adapt`; mean over the "
             "seeds; Δ against grid (best on CV).\n"]
    for name, rows in res.items():
        lines += [f"## {name}\n", "| row | compute (× grid) | val acc | Δ (points) | test acc | noisy mem. |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            d = r.get("delta_val_acc", float("nan"))
            noisy = r.get("noisy_memorized")
            lines.append(f"| {r['row']} | {r['compute']:.3g} | {100 * r['val_acc']:.1f}% | "
                         f"{'–' if d != d else f'{100 * d:+.1f}'} | {100 * r['test_acc']:.1f}% | "
                         f"{'–' if noisy is None or noisy != noisy else f'{100 * noisy:.1f}%'} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.adapt", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: numbers mean nothing")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(Path(__file__).parent))
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    info = machine(torch.device("cpu"), torch.get_num_threads())
    res = run(seeds, quick=a.quick)
    write_results(a.out, "results_adapt", {"rows": res, "machine": info}, report(res, info, seeds), quick=a.quick)


if __name__ == "__main__":
    main()
