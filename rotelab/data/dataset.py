"""The one in-memory dataset type every loader returns and every study consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from rotelab.errors import InvalidInputError
from rotelab.validation import check_features, check_labels

#: ``image``: features (C, H, W); ``sequence``: (C, L); ``vector``: (D,).
KINDS = ("image", "sequence", "vector")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train pool and held-out test split, as float32 features and int64 labels.

    ``x_train`` has shape (n_train, *feature_shape) and ``y_train`` (n_train,): the labels
    as given, which are the flipped ones after :func:`~rotelab.data.noise.flip_labels`;
    ``y_train_clean`` then keeps the originals. The test split ("new data") is never used
    for training or model selection.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    kind: str
    y_train_clean: np.ndarray | None = None
    description: str = ""
    info: dict = field(default_factory=dict)

    # ── shapes ─────────────────────────────────────────────────────────────────────────
    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def noisy_mask(self) -> np.ndarray:
        """Bool (n_train,): True where the given label was flipped by label-noise injection."""
        if self.y_train_clean is None:
            return np.zeros(self.n_train, dtype=bool)
        return self.y_train != self.y_train_clean

    @property
    def clean_labels(self) -> np.ndarray:
        """Int (n_train,): the true training labels (the given ones when no noise was injected)."""
        return self.y_train if self.y_train_clean is None else self.y_train_clean

    def fingerprint(self) -> str:
        """Hash of the arrays and names, so a stored job is reused only for identical data."""
        h = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\x00".join(self.classes).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """Plain-dict description for tables, JSON and the report header."""
        return {
            "name": self.name,
            "kind": self.kind,
            "feature_shape": list(self.feature_shape),
            "n_classes": self.n_classes,
            "classes": list(self.classes),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_noisy": int(self.noisy_mask.sum()),
            **self.info,
        }

    def with_(self, **changes) -> "Dataset":
        return replace(self, **changes)


def make_dataset(
    name: str,
    x_train,
    y_train,
    x_test=None,
    y_test=None,
    *,
    classes=None,
    kind: str | None = None,
    description: str = "",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Validate user arrays and build a :class:`Dataset`.

    ``x_train`` of shape (n, *feature_shape); ``y_train`` (n,) integer labels. Without a test
    split, a stratified ``test_fraction`` of the data is held out (seeded) as the test split.
    ``kind`` is inferred from the feature rank when not given: (D,) vector, (C, L) sequence,
    (H, W) or (C, H, W) image.
    """
    x_train = check_features(f"{name}: x_train", x_train)
    if (x_test is None) != (y_test is None):
        raise InvalidInputError(f"{name}: give both x_test and y_test, or neither")
    y_train = check_labels(f"{name}: y_train", y_train, n_samples=len(x_train))
    if x_test is not None:
        x_test = check_features(f"{name}: x_test", x_test)
        y_test = check_labels(f"{name}: y_test", y_test, n_samples=len(x_test))
    if classes is None:
        top = max(int(y_train.max()), int(y_test.max()) if y_test is not None else 0)
        classes = tuple(str(i) for i in range(top + 1))
    classes = tuple(str(c) for c in classes)
    if len(classes) < 2:
        raise InvalidInputError(f"{name}: need at least 2 classes, got {len(classes)}")
    y_train = check_labels(f"{name}: y_train", y_train, n_samples=len(x_train), n_classes=len(classes))
    if x_test is None:
        x_train, y_train, x_test, y_test = _stratified_holdout(x_train, y_train, test_fraction, seed, name)
    else:
        y_test = check_labels(f"{name}: y_test", y_test, n_samples=len(x_test), n_classes=len(classes))
        if x_test.shape[1:] != x_train.shape[1:]:
            raise InvalidInputError(
                f"{name}: x_test has feature shape {x_test.shape[1:]} but x_train has {x_train.shape[1:]}"
            )
    x_train, x_test, kind = _canonical_layout(x_train, x_test, kind, name)
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train),
        y_train=y_train,
        x_test=np.ascontiguousarray(x_test),
        y_test=y_test,
        classes=classes,
        kind=kind,
        description=description,
    )


def _canonical_layout(x_train, x_test, kind, name):
    """Bring features to (C, H, W) for images, (C, L) for sequences, (D,) for vectors."""
    rank = x_train.ndim - 1
    if kind is None:
        kind = {1: "vector", 2: "image", 3: "image"}.get(rank)
        if kind is None:
            raise InvalidInputError(f"{name}: features of rank {rank} are not supported (shape {x_train.shape})")
    if kind not in KINDS:
        raise InvalidInputError(f"{name}: unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "image" and rank == 2:  # (H, W) grayscale -> (1, H, W)
        x_train, x_test = x_train[:, None], x_test[:, None]
    elif kind == "sequence" and rank == 1:  # (L,) -> (1, L)
        x_train, x_test = x_train[:, None], x_test[:, None]
    expected_rank = {"image": 3, "sequence": 2, "vector": 1}[kind]
    if x_train.ndim - 1 != expected_rank:
        raise InvalidInputError(
            f"{name}: kind {kind!r} needs features of rank {expected_rank}, got shape {x_train.shape[1:]}"
        )
    return x_train, x_test, kind


def _stratified_holdout(x, y, fraction, seed, name):
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise InvalidInputError(f"{name}: cannot hold out a test split ({exc})") from None
    return x_tr, y_tr, x_te, y_te
