"""Label-noise injection: flip a seeded fraction of training labels and remember which."""

from __future__ import annotations

import numpy as np

from rotelab.data.dataset import Dataset
from rotelab.validation import check_float


def flip_labels(dataset: Dataset, fraction: float, *, seed: int = 0) -> Dataset:
    """Flip ``round(fraction * n_train)`` training labels, each to a different random class.

    The flipped examples are chosen uniformly without replacement; the new label is drawn
    uniformly from the other classes, so every flipped label is wrong. The originals are
    kept in ``y_train_clean``; the test split and the example ids are never touched.
    """
    fraction = check_float("label noise", fraction, low=0.0, high=1.0, high_open=True)
    if fraction == 0.0:
        return dataset
    rng = np.random.default_rng([seed, 0x1ABE1])
    n = dataset.n_train
    chosen = rng.choice(n, size=int(round(fraction * n)), replace=False)
    clean = dataset.clean_labels
    y = clean.copy()
    shift = rng.integers(1, dataset.n_classes, size=len(chosen))  # never 0: always a wrong class
    y[chosen] = (clean[chosen] + shift) % dataset.n_classes
    return dataset.with_(y_train=y, y_train_clean=clean, info={**dataset.info, "label_noise": fraction})
