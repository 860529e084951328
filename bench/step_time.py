"""The MNIST-1D MLP's training step at K members: milliseconds per step, setup and the final
evaluation left out (two jobs of 2 and 7 epochs; the difference is 5 epochs of steps).

``python -m bench.step_time [--device cuda] [--k 64] [--precision fp32]``. On a GPU a step
of this small model is bound by kernel launches and Python, not arithmetic; the goal there
is 0.5 ms at K = 64.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from rotelab.data import load_dataset
from rotelab.engine import Members, Recipe, train_job
from rotelab.engine.train import resolve_device
from rotelab.models import ModelSpec, build_model


def step_ms(device: str = "auto", *, k: int = 64, precision: str = "fp32", batch_size: int = 100) -> dict:
    """Milliseconds per training step of k MNIST-1D MLPs (each on the 4000 training examples)."""
    dev = resolve_device(device)
    ds = load_dataset("mnist1d")
    x, y = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
    train = np.zeros((k, len(y)), bool)
    train[:, : ds.n_train] = True
    spec = ModelSpec("mlp").resolved()
    seconds = {}
    for epochs in (2, 7, 2, 7):  # twice each: the first pair pays the warm-up
        recipe = Recipe(model=spec, epochs=epochs, batch_size=batch_size, eval_every=0, precision=precision)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_job(lambda: build_model(spec, ds.feature_shape, 10), x, y, members=Members(np.arange(k), train, ~train),
                  test_mask=~train[0], recipe=recipe, n_classes=10, kind=ds.kind, device=dev, outputs=("pred",))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds[epochs] = time.perf_counter() - t0
    steps = 5 * -(-ds.n_train // batch_size)
    return {"device": str(dev), "k": k, "precision": precision, "steps": steps,
            "ms_per_step": 1000 * (seconds[7] - seconds[2]) / steps, "job_7_epochs_s": seconds[7]}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.step_time", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--precision", default="fp32")
    a = ap.parse_args()
    print(json.dumps(step_ms(a.device, k=a.k, precision=a.precision)))


if __name__ == "__main__":
    main()
