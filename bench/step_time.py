"""The MNIST-1D MLP's training step at K members: milliseconds per step, setup and the final
evaluation left out (two jobs of 2 and 7 epochs; the difference is 5 epochs of steps).

``python -m bench.step_time [--device cuda] [--k 64] [--precision fp32] [--profile FILE]``. On
a GPU a step of this small model is bound by kernel launches and Python, not arithmetic; the
goal there is 0.5 ms at K = 64. ``ROTELAB_CUDA_GRAPH=1`` replays the step from a CUDA graph
(``rotelab.engine.graph_step``); ``--profile`` writes torch.profiler's table of one 2-epoch
job (where the time of a step goes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.train import resolve_device
from rotelab.models import ModelSpec, build_model


def step_ms(device: str = "auto", *, k: int = 64, precision: str = "fp32", batch_size: int = 100,
            profile: str | None = None) -> dict:
    """Milliseconds per training step of k MNIST-1D MLPs (each on the 4000 training examples)."""
    dev = resolve_device(device)
    ds = load_dataset("mnist1d")
    x, y = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
    train = np.zeros((k, len(y)), bool)
    train[:, : ds.n_train] = True
    spec = ModelSpec("mlp").resolved()
    seconds, graph = {}, False
    for i, epochs in enumerate((2, 7, 2, 7, 2)):  # twice each: the first pair pays the warm-up; the last: profiled
        recipe = Recipe(model=spec, epochs=epochs, batch_size=batch_size, eval_every=0, precision=precision)
        if i == 4 and not profile:
            break
        prof = _profiler(dev) if i == 4 else contextlib.nullcontext()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with prof:
            out = train_job(lambda: build_model(spec, ds.feature_shape, 10), x, y, members=Members(np.arange(k), train, ~train),
                            test_mask=~train[0], recipe=recipe, n_classes=10, kind=ds.kind, device=dev, outputs=("pred",))
            if dev.type == "cuda":
                torch.cuda.synchronize()
        if i < 4:
            seconds[epochs], graph = time.perf_counter() - t0, bool(out.get("cuda_graph", False))
        else:
            sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
            Path(profile).write_text(prof.key_averages().table(sort_by=sort, row_limit=40))
    steps = 5 * -(-ds.n_train // batch_size)
    return {"device": str(dev), "k": k, "precision": precision, "cuda_graph": graph, "steps": steps,
            "ms_per_step": 1000 * (seconds[7] - seconds[2]) / steps, "job_7_epochs_s": seconds[7]}


def _profiler(dev: torch.device):
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else []))


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.step_time", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--profile", default=None, help="write torch.profiler's table of a 2-epoch job to this file")
    a = ap.parse_args()
    print(json.dumps(step_ms(a.device, k=a.k, precision=a.precision, profile=a.profile)))


if __name__ == "__main__":
    main()
