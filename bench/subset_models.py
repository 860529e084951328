"""Subset models for the label-issue and RMIA benchmarks: the memorization study's recipe,
called on the engine directly, with every model's per-class probabilities kept.

Member m of seed s trains on a random 70% of the training pool drawn from a generator seeded
by ``(s, m)`` alone (as ``rotelab.studies.memorization.subset_masks`` does), so a 64-model
run is the first 64 models of a 128-model one. Outputs are cached under ``.cache/bench``
(keyed by every setting; see ``CACHE``), so the two benchmarks and reruns share one training.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rotelab.data import Dataset, load_dataset
from rotelab.engine import OUTPUTS, Members, Recipe, train_job
from rotelab.models import ModelSpec, build_model
from rotelab.techniques import parse_cell

#: Where outputs are cached; ``ROTELAB_BENCH_CACHE`` moves it (the tests point it at a temporary folder).
CACHE = Path(os.environ.get("ROTELAB_BENCH_CACHE", Path(__file__).resolve().parent.parent / ".cache" / "bench"))
_SEED_STRIDE = 100_003  # the memorization study's member seeds: s * stride + m
_SUBSET_STREAM = 0x5B5E7  # the memorization study's subset stream


@dataclass(frozen=True)
class SubsetRun:
    """One set of subset models: the memorization study's defaults for an mlp."""

    data: str = "digits"
    label_noise: float = 0.1
    seed: int = 0
    models: int = 128
    subset: float = 0.7
    epochs: int = 100  # the study's mlp default: models that fit their flipped examples
    lr: float = 1e-2  # Adam, cosine schedule, batch 100: the engine's defaults
    batch_size: int = 100
    technique: str = "baseline"  # a cell such as "dropout" or "augment"
    chunk: int = 64  # members trained at once

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def subset_masks(n_models: int, *, n_pool: int, n_subset: int, seed: int) -> np.ndarray:
    """Bool (n_models, n_pool): the memorization study's subsets (row m from ``(seed, m)``)."""
    mask = np.zeros((n_models, n_pool), dtype=bool)
    for i in range(n_models):
        rng = np.random.default_rng([seed, i, _SUBSET_STREAM])
        mask[i, rng.choice(n_pool, size=n_subset, replace=False)] = True
    return mask


def train_subset_models(run: SubsetRun, *, log=print) -> tuple[Dataset, dict[str, np.ndarray]]:
    """The dataset and the outputs on pool + test: ``train_mask`` (M, n_train) bool,
    ``margin``/``loss``/``confidence`` (M, N) float32, ``pred`` (M, N), ``correct`` (M, N),
    ``probs`` (M, N, C) float16, ``seconds``. N = n_train + n_test, pool first."""
    ds = load_dataset(run.data, label_noise=run.label_noise, seed=run.seed)
    path = CACHE / f"{run.data}-{run.key()}.npz"
    if path.exists():
        with np.load(path) as f:
            return ds, {k: f[k] for k in f.files}
    n_pool = ds.n_train
    mask = subset_masks(run.models, n_pool=n_pool, n_subset=round(run.subset * n_pool), seed=run.seed)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    test = np.zeros(len(y), bool)
    test[n_pool:] = True
    spec = ModelSpec("mlp").resolved()
    recipe = Recipe(model=spec, epochs=run.epochs, batch_size=run.batch_size, lr=run.lr, eval_every=0)
    recipe = parse_cell(run.technique).apply(recipe, kind=ds.kind)
    parts, t0 = [], time.perf_counter()
    for start in range(0, run.models, run.chunk):
        stop = min(start + run.chunk, run.models)
        train = np.zeros((stop - start, len(y)), bool)
        train[:, :n_pool] = mask[start:stop]
        val = np.zeros_like(train)
        val[:, :n_pool] = ~mask[start:stop]
        seeds = np.asarray([run.seed * _SEED_STRIDE + m for m in range(start, stop)], dtype=np.int64)
        out = train_job(lambda: build_model(recipe.model, ds.feature_shape, ds.n_classes), x, y,
                        members=Members(seeds, train, val), test_mask=test, recipe=recipe,
                        n_classes=ds.n_classes, kind=ds.kind, device="cpu",
                        job_seed=run.seed * _SEED_STRIDE + start, outputs=OUTPUTS + ("probs",))
        parts.append(out)
        log(f"    {run.data} noise {run.label_noise} seed {run.seed} {run.technique}: "
            f"models {start}-{stop - 1} in {out['seconds']:.0f} s")
    outs = {k: np.concatenate([p[k] for p in parts]) for k in OUTPUTS + ("probs",)}
    outs["train_mask"] = mask
    outs["seconds"] = np.float64(time.perf_counter() - t0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **outs)
    os.replace(tmp, path)
    return ds, outs
