"""The one in-memory dataset type every loader returns and every study consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from rotelab.errors import InvalidInputError
from rotelab.validation import check_features, check_labels

#: ``image``: features (C, H, W); ``sequence``: (C, L); ``vector``: (D,).
KINDS = ("image", "sequence", "vector")

#: What an example id is. ``index``: a 0-based int64 index into the source named in
#: ``Dataset.id_sources`` (the user's arrays or torch Dataset, an official split, a generator);
#: ``row``: the 0-based int64 data row of a CSV file, as pandas numbers it (row 0 is the first
#: line after the header, so ``pd.read_csv(path).iloc[id]``); ``path``: a str file path relative
#: to the folder the user gave, with ``/`` separators.
ID_KINDS = ("index", "row", "path")
SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train pool and held-out test split, as float32 features and int64 labels.

    ``x_train`` has shape (n_train, *feature_shape) and ``y_train`` (n_train,): the labels
    as given, which are the flipped ones after :func:`~rotelab.data.noise.flip_labels`;
    ``y_train_clean`` then keeps the originals. The test split ("new data") is never used
    for training or model selection.

    Every example carries an id that points back to the user's source: ``train_ids``
    (n_train,) and ``test_ids`` (n_test,), of kind ``id_kind`` (one of :data:`ID_KINDS`: int64
    for ``index`` and ``row``, str for ``path``). ``id_sources`` names what the train ids and
    the test ids point into, e.g. ``("x", "x_test")``, or ``("x", "x")`` when the test split was
    held out of ``x``. Left out, the ids are the positions in ``x_train`` and ``x_test``
    (``id_sources == ("x_train", "x_test")``). Ids are unique within a source, travel through
    :func:`~rotelab.data.subsets.stratified_subset` and :func:`~rotelab.data.noise.flip_labels`,
    and never enter :meth:`fingerprint`: the same arrays give the same jobs and study.

    ``notes`` are lines saying how the input was changed on reading where the user could not
    guess it (channels-last images transposed, a saved pandas index column dropped);
    :func:`~rotelab.data.features.feature_warnings` reports them with the other warnings.
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
    train_ids: np.ndarray | None = None
    test_ids: np.ndarray | None = None
    id_kind: str = "index"
    id_sources: tuple[str, str] = ("x_train", "x_test")
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(str(line) for line in self.notes))
        if self.id_kind not in ID_KINDS:
            raise InvalidInputError(
                f"{self.name}: unknown id_kind {self.id_kind!r}: expected one of {', '.join(ID_KINDS)}"
            )
        if len(self.id_sources) != 2 or not all(isinstance(s, str) for s in self.id_sources):
            raise InvalidInputError(
                f"{self.name}: id_sources must be two names (train ids, test ids), got {self.id_sources!r}"
            )
        object.__setattr__(self, "id_sources", tuple(self.id_sources))
        for split, n in (("train", len(self.y_train)), ("test", len(self.y_test))):
            ids = getattr(self, f"{split}_ids")
            ids = np.arange(n, dtype=np.int64) if ids is None else _check_ids(self, split, ids, n)
            object.__setattr__(self, f"{split}_ids", ids)

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

    # ── example ids ─────────────────────────────────────────────────────────────────────
    def ids_of(self, indices, *, split: Literal["train", "test"] = "train") -> np.ndarray:
        """Ids, shape (n,), of the examples at ``indices`` (n,): positions in the training pool
        (``x_train``), or in ``x_test`` with ``split="test"``. Bool masks work too."""
        if split not in SPLITS:
            raise InvalidInputError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        ids = self.train_ids if split == "train" else self.test_ids
        try:
            return ids[np.asarray(indices)]
        except IndexError as exc:
            raise InvalidInputError(
                f"{self.name}: {split} indices out of range for {len(ids)} examples ({exc})"
            ) from None

    def all_ids(self) -> np.ndarray:
        """Ids (n_train + n_test,): the training pool, then the test split, the order in which
        studies concatenate ``x_train`` and ``x_test``. Pair with :meth:`all_id_sources`: train and
        test ids may point into different sources (the same number then names two examples)."""
        return np.concatenate([self.train_ids, self.test_ids])

    def all_id_sources(self) -> np.ndarray:
        """Str (n_train + n_test,): what each id of :meth:`all_ids` points into (``id_sources``)."""
        return np.repeat(np.array(self.id_sources), [self.n_train, self.n_test])

    @property
    def id_description(self) -> str:
        """One line saying what the ids are, for summaries, reports and --json."""
        train, test = self.id_sources
        if self.info.get("format") == "npz":  # the arrays' names inside the user's file
            name = Path(str(self.info.get("path", self.name))).name
            train, test = f"{train} of {name}", f"{test} of {name}"
        where = train if train == test else f"{train} (train pool) and {test} (test split)"
        return {
            "index": f"0-based index into {where}",
            "row": f"0-based data row of {where} (row 0 = the first line after the header, "
            "as pandas numbers them: pd.read_csv(path).iloc[id])",
            "path": f"file path relative to {where}",
        }[self.id_kind]

    def fingerprint(self) -> str:
        """Hash of the arrays and names, so a stored job is reused only for identical data.
        The example ids are left out: the same arrays give the same jobs whatever their ids."""
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
            "id_kind": self.id_kind,
            "id_sources": list(self.id_sources),
            "ids": self.id_description,
            **self.info,
        }

    def with_(self, **changes) -> "Dataset":
        return replace(self, **changes)


def _check_ids(ds: Dataset, split: str, ids, n: int) -> np.ndarray:
    """Ids of one split as a (n,) int64 array (``index``/``row``) or str array (``path``), unique."""
    arr = np.asarray(ids)
    if arr.shape != (n,):
        raise InvalidInputError(f"{ds.name}: {split}_ids must have shape ({n},), one per example, got {arr.shape}")
    if ds.id_kind == "path":
        if arr.dtype.kind != "U":
            raise InvalidInputError(f"{ds.name}: {split}_ids of kind 'path' must be strings, got dtype {arr.dtype}")
    elif arr.dtype.kind not in "iu" or (n and arr.min() < 0):
        raise InvalidInputError(
            f"{ds.name}: {split}_ids of kind {ds.id_kind!r} must be non-negative integers, got dtype {arr.dtype}"
            + (f" with minimum {arr.min()}" if arr.dtype.kind in "iu" else "")
        )
    else:
        arr = arr.astype(np.int64, copy=False)
    if len(np.unique(arr)) != n:
        raise InvalidInputError(f"{ds.name}: {split}_ids repeat an id; each example needs its own")
    if split == "test" and ds.id_sources[0] == ds.id_sources[1]:
        shared = np.intersect1d(ds.train_ids, arr)
        if len(shared):
            raise InvalidInputError(
                f"{ds.name}: id {shared[0].item()!r} is both a train and a test id of {ds.id_sources[0]}; "
                "give id_sources two names when the splits come from two sources"
            )
    return arr


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
    train_ids=None,
    test_ids=None,
    id_kind: Literal["index", "row", "path"] = "index",
    id_sources: tuple[str, str] | None = None,
) -> Dataset:
    """Validate user arrays and build a :class:`Dataset`.

    ``x_train`` of shape (n, *feature_shape); ``y_train`` (n,) integer labels. Without a test
    split, a stratified ``test_fraction`` of the data is held out (seeded) as the test split.
    ``kind`` is inferred from the feature rank when not given: (D,) vector, (C, L) sequence,
    (H, W) or (C, H, W) image. Images given as uint8 (0..255 pixels: arrays, tensors) are divided
    by 255 into [0, 1], as the IDX, CIFAR and image-folder loaders read them; other dtypes and
    kinds keep their values. Images of shape (H, W, C) with C in {1, 3, 4} and H not (channels
    last, as PIL and matplotlib hold them) are transposed to (C, H, W), with a line in ``notes``.
    Labels are class indices: without ``classes``, labels whose values leave more than half of
    the classes 0..max without any example are refused (remap them to 0..K-1).

    ``train_ids`` (n,) and ``test_ids`` (n_test,) name each example in the user's source (kind
    ``id_kind``, see :data:`ID_KINDS`), by default its index into ``x_train``/``x_test``; a held-out
    test split keeps the ids of its rows. ``id_sources`` names what they point into: by default
    ``("x", "x_test")``, or ``("x", "x")`` when the test split is held out.
    """
    pixels = _is_uint8(x_train), _is_uint8(x_test)
    x_train = check_features(f"{name}: x_train", x_train)
    kind = _infer_kind(name, kind, x_train)
    x_train = _scale_pixels(x_train, pixels[0], kind)
    if (x_test is None) != (y_test is None):
        raise InvalidInputError(f"{name}: give both x_test and y_test, or neither")
    y_train = check_labels(f"{name}: y_train", y_train, n_samples=len(x_train))
    if x_test is not None:
        x_test = _scale_pixels(check_features(f"{name}: x_test", x_test), pixels[1], kind)
        y_test = check_labels(f"{name}: y_test", y_test, n_samples=len(x_test))
    classes = _check_classes(name, classes, y_train, y_test)
    y_train = check_labels(f"{name}: y_train", y_train, n_samples=len(x_train), n_classes=len(classes))
    (x_train, y_train, train_ids), (x_test, y_test, test_ids), held_out = _test_split(
        name, (x_train, y_train, train_ids), (x_test, y_test, test_ids), len(classes), test_fraction, seed
    )
    id_sources = id_sources or (("x", "x") if held_out else ("x", "x_test"))
    x_train, x_test, notes = _canonical_layout(x_train, x_test, kind, name)
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train),
        y_train=y_train,
        x_test=np.ascontiguousarray(x_test),
        y_test=y_test,
        classes=classes,
        kind=kind,
        description=description,
        train_ids=train_ids,
        test_ids=test_ids,
        id_kind=id_kind,
        id_sources=tuple(id_sources),
        notes=notes,
    )


def _test_split(name: str, train: tuple, test: tuple, n_classes: int, fraction: float, seed: int):
    """((x, y, ids) of the pool, (x, y, ids) of the test split, whether the test split was held out).

    Without ``x_test`` a stratified ``fraction`` of the pool is held out; its ids go with it."""
    x, y, ids = train
    x_test, y_test, test_ids = test
    ids = np.arange(len(x), dtype=np.int64) if ids is None else np.asarray(ids)
    if ids.shape != (len(x),):
        raise InvalidInputError(f"{name}: train_ids must have shape ({len(x)},), got {ids.shape}")
    if x_test is not None:
        y_test = check_labels(f"{name}: y_test", y_test, n_samples=len(x_test), n_classes=n_classes)
        if x_test.shape[1:] != x.shape[1:]:
            raise InvalidInputError(
                f"{name}: x_test has feature shape {x_test.shape[1:]} but x_train has {x.shape[1:]}"
            )
        return (x, y, ids), (x_test, y_test, test_ids), False
    if test_ids is not None:
        raise InvalidInputError(f"{name}: test_ids given without x_test; give x_test and y_test too")
    kept, held = _stratified_holdout(y, fraction, seed, name)
    return (x[kept], y[kept], ids[kept]), (x[held], y[held], ids[held]), True


def _check_classes(name: str, classes, y_train: np.ndarray, y_test: np.ndarray | None) -> tuple[str, ...]:
    """Class names as str; "0".."K-1" from the largest label when not given, refused when most
    of those classes would be empty (labels that are codes, not indices, e.g. {0, 5, 10})."""
    if classes is None:
        top = max(int(y_train.max()), int(y_test.max()) if y_test is not None else 0)
        classes = tuple(str(i) for i in range(top + 1))
        seen = len(np.union1d(y_train, y_train if y_test is None else y_test))
        if 2 * (len(classes) - seen) > len(classes):
            raise InvalidInputError(
                f"{name}: labels must be class indices 0..K-1, but {seen} distinct labels go up to {top}, so "
                f"{len(classes) - seen} of the {len(classes)} classes 0..{top} would have no example; remap them "
                "to 0..K-1, e.g. y = numpy.unique(y, return_inverse=True)[1] (train and test labels together)"
            )
    classes = tuple(str(c) for c in classes)
    if len(classes) < 2:
        raise InvalidInputError(f"{name}: need at least 2 classes, got {len(classes)}")
    return classes


def _is_uint8(x) -> bool:
    """True for a uint8 array or tensor: 0..255 pixel values (read before they become float32)."""
    return str(getattr(x, "dtype", "")) in ("uint8", "torch.uint8")


def _infer_kind(name: str, kind: str | None, x: np.ndarray) -> str:
    """``kind`` checked against :data:`KINDS`, or inferred from the rank of x (n, *features)."""
    rank = x.ndim - 1
    if kind is None:
        kind = {1: "vector", 2: "image", 3: "image"}.get(rank)
        if kind is None:
            raise InvalidInputError(f"{name}: features of rank {rank} are not supported (shape {x.shape})")
    if kind not in KINDS:
        raise InvalidInputError(f"{name}: unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def _scale_pixels(x: np.ndarray, was_uint8: bool, kind: str) -> np.ndarray:
    """uint8 images divided by 255 into [0, 1], the one scaling every image source shares: a
    network left on 0..255 pixels (no standardization for images) stays at chance."""
    if was_uint8 and kind == "image":
        x /= np.float32(255.0)  # check_features made x, a float32 copy of the uint8 input
    return x


def _canonical_layout(x_train, x_test, kind: str, name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Bring features to (C, H, W) for images, (C, L) for sequences, (D,) for vectors, and say
    (in the returned note lines) when channels-last images were transposed."""
    rank = x_train.ndim - 1
    notes = []
    if kind == "image" and rank == 2:  # (H, W) grayscale -> (1, H, W)
        x_train, x_test = x_train[:, None], x_test[:, None]
    elif kind == "image" and rank == 3 and _channels_last(x_train.shape[1:]):
        given = x_train.shape[1:]
        x_train, x_test = x_train.transpose(0, 3, 1, 2), x_test.transpose(0, 3, 1, 2)
        notes.append(
            f"{name}: images of shape {given} read as channels-last (H, W, C) and transposed to "
            f"(C, H, W) = {x_train.shape[1:]}; give (C, H, W) to skip this"
        )
    elif kind == "sequence" and rank == 1:  # (L,) -> (1, L)
        x_train, x_test = x_train[:, None], x_test[:, None]
    expected_rank = {"image": 3, "sequence": 2, "vector": 1}[kind]
    if x_train.ndim - 1 != expected_rank:
        raise InvalidInputError(
            f"{name}: kind {kind!r} needs features of rank {expected_rank}, got shape {x_train.shape[1:]}"
        )
    return x_train, x_test, notes


def _channels_last(shape: tuple[int, ...]) -> bool:
    """True when an image shape (a, b, c) can only be (H, W, C): c is a channel count (1, 3 or 4)
    and a is not; an ambiguous shape such as (3, 8, 3) is left as (C, H, W)."""
    channels = (1, 3, 4)
    return shape[2] in channels and shape[0] not in channels


def _stratified_holdout(y: np.ndarray, fraction: float, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) positions into ``y`` (n,): a seeded, stratified ``fraction`` held out.

    Splitting positions gives the same rows in the same order as splitting the arrays
    themselves, so datasets (and their fingerprints) are unchanged by carrying ids.
    """
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        kept, held = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise InvalidInputError(f"{name}: cannot hold out a test split ({exc})") from None
    return kept, held
