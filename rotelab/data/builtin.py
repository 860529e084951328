"""Built-in datasets: generated or shipped locally, never downloaded at run time."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rotelab.data.dataset import Dataset


def cache_dir() -> Path:
    """Where generated datasets are cached (``$ROTELAB_CACHE`` or ``~/.cache/rotelab``)."""
    return Path(os.environ.get("ROTELAB_CACHE", Path.home() / ".cache" / "rotelab"))


def digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits as (1, 8, 8) images in [0, 1]; 80/20 stratified split.

    Example ids are indices into ``sklearn.datasets.load_digits()`` (its ``images``/``target``),
    for the pool and the test split alike."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    # splitting positions picks the same rows, in the same order, as splitting x and y
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    return Dataset(
        name="digits",
        x_train=np.ascontiguousarray(x[tr]),
        y_train=y[tr],
        x_test=np.ascontiguousarray(x[te]),
        y_test=y[te],
        classes=tuple(str(i) for i in range(10)),
        kind="image",
        description="scikit-learn handwritten digits, 8x8 grayscale",
        train_ids=tr,
        test_ids=te,
        id_sources=("load_digits()", "load_digits()"),
    )


def mnist1d(*, num_samples: int = 5000, seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020) from the ``mnist1d`` generator: 4000 train / 1000 test, (1, 40).

    Generated locally with the package's default arguments (the paper's dataset) and cached
    as .npz; the package's global-seed side effect is undone so callers' RNGs are untouched.
    Example ids are indices within the generated train split (``x``) and test split (``x_test``).
    """
    path = cache_dir() / f"mnist1d-{num_samples}-{seed}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        except Exception:  # a damaged cache is regenerated, never trusted
            arrays = None
    else:
        arrays = None
    if arrays is None:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed = num_samples, seed
        state = np.random.get_state()
        try:
            data = make_dataset(args)
        finally:
            np.random.set_state(state)
        arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    return Dataset(
        name="mnist1d",
        x_train=arrays["x"].astype(np.float32)[:, None],
        y_train=arrays["y"].astype(np.int64),
        x_test=arrays["x_test"].astype(np.float32)[:, None],
        y_test=arrays["y_test"].astype(np.int64),
        classes=tuple(str(i) for i in range(10)),
        kind="sequence",
        description="MNIST-1D (Greydanus 2020), 1-D sequences of length 40",
        id_sources=("mnist1d x", "mnist1d x_test"),
    )


def synthetic(
    *, n_train: int = 300, n_test: int = 200, n_features: int = 16, n_classes: int = 4, seed: int = 0
) -> Dataset:
    """Gaussian class clusters in ``n_features`` dimensions: fast, for tests and examples.

    Clusters overlap (a linear model reaches about 77% test accuracy), so an MLP fits its
    training set exactly while validation accuracy stays near that: memorization in seconds.
    Example ids are generation indices: 0..n_train-1 for the pool, then n_train.. for the test split.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 0.5, size=(n_classes, n_features))
    n = n_train + n_test
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    x = centers[y] + rng.normal(0.0, 1.0, size=(n, n_features))
    x = x.astype(np.float32)
    return Dataset(
        name="synthetic",
        x_train=x[:n_train],
        y_train=y[:n_train].astype(np.int64),
        x_test=x[n_train:],
        y_test=y[n_train:].astype(np.int64),
        classes=tuple(f"class{i}" for i in range(n_classes)),
        kind="vector",
        description=f"Gaussian clusters, {n_features} features",
        train_ids=np.arange(n_train),
        test_ids=np.arange(n_train, n),
        id_sources=("the generated examples", "the generated examples"),
    )


BUILTIN: dict[str, Callable[[], Dataset]] = {
    "digits": digits,
    "mnist1d": mnist1d,
    "synthetic": synthetic,
}
