"""Subsets of the training pool: the small-data regime where memorization shows."""

from __future__ import annotations

import numpy as np

from rotelab.data.dataset import Dataset
from rotelab.errors import InvalidInputError


def stratified_subset(dataset: Dataset, n: int, *, seed: int = 0) -> Dataset:
    """Keep ``n`` training examples, class proportions preserved (seeded); test split unchanged.

    The kept examples stay in their pool order and keep their ids (``train_ids``), so the
    subset still points back to the user's source."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"train size must be a positive whole number, got {n!r}")
    if n > dataset.n_train:
        raise InvalidInputError(
            f"train size {n} is larger than the {dataset.n_train} training examples of "
            f"{dataset.name!r}; pass at most {dataset.n_train}"
        )
    if n == dataset.n_train:
        return dataset
    if n < dataset.n_classes:
        raise InvalidInputError(
            f"train size {n} is smaller than the number of classes ({dataset.n_classes})"
        )
    from sklearn.model_selection import train_test_split

    labels = dataset.clean_labels
    idx, _ = train_test_split(
        np.arange(dataset.n_train), train_size=n, random_state=seed, stratify=labels
    )
    idx = np.sort(idx)
    return dataset.with_(
        x_train=dataset.x_train[idx],
        y_train=dataset.y_train[idx],
        y_train_clean=None if dataset.y_train_clean is None else dataset.y_train_clean[idx],
        train_ids=dataset.train_ids[idx],
        info={**dataset.info, "train_size": int(n)},
    )
