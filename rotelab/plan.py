"""Studies as jobs: the splits, folds and subsets are made here and nowhere else.

A job is one recipe and K members (a seed and a train/validation mask each) plus the model
it trains (factory and fingerprint). Cross-validation folds, technique cells, memorization
subset models and shadow models are all jobs; the executors train them and the store
keeps them. Masks are (K, N) bool over all N examples of a study: the training pool
(first ``n_pool``), then the test split, which no job ever trains or validates on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from rotelab.data import Dataset
from rotelab.engine.recipe import Recipe
from rotelab.engine.train import OUTPUTS, Members
from rotelab.errors import InvalidInputError
from rotelab.store import FORMAT_VERSION
from rotelab.validation import class_name

SEED_STRIDE = 100_003  # memorization model m of study seed s gets seed s * stride + m
_SUBSET_STREAM = 0x5B5E7  # keeps the subset draws apart from other seeded streams
_MAX_MODELS_SEARCH = 100_000


# ══ what jobs train on ═════════════════════════════════════════════════════════════════
@dataclass(frozen=True, eq=False)
class Examples:
    """Every example a study's jobs see: the training pool (first ``n_pool``), then the test split."""

    x: np.ndarray  # (N, *feature_shape) float32
    y: np.ndarray  # (N,) labels as trained on (flipped ones included)
    clean: np.ndarray  # (N,) the true labels
    test_mask: np.ndarray  # (N,) bool
    n_pool: int
    n_classes: int
    kind: str  # "image", "sequence" or "vector"
    fingerprint: str  # of the data: a stored job is reused only for identical data
    classes: tuple[str, ...] = ()  # class names by label, for messages ("" when not known)

    @classmethod
    def of(cls, ds: Dataset) -> "Examples":
        test = np.zeros(ds.n_train + ds.n_test, dtype=bool)
        test[ds.n_train:] = True
        y, clean = np.concatenate([ds.y_train, ds.y_test]), np.concatenate([ds.clean_labels, ds.y_test])
        fingerprint = ds.fingerprint()
        if not np.array_equal(y, clean):  # the curves are scored on the clean labels: they are data too
            fingerprint += "-" + hashlib.sha256(np.ascontiguousarray(clean, dtype=np.int64).tobytes()).hexdigest()[:8]
        return cls(np.concatenate([ds.x_train, ds.x_test]), y, clean, test, ds.n_train, ds.n_classes, ds.kind,
                   fingerprint, tuple(ds.classes))

    @property
    def noisy(self) -> bool:
        """True when label noise flipped some training labels (``y`` differs from ``clean``)."""
        return bool(self.flipped.any())

    def class_name(self, label: int) -> str:
        """How messages name a class: ``class 3``, or ``class 'cat' (label 3)`` when it has a name."""
        return class_name(label, self.classes)

    @property
    def flipped(self) -> np.ndarray:
        """Bool (N,): the pool examples whose training label was flipped by label noise."""
        return self.y != self.clean


@dataclass(frozen=True, eq=False)
class ModelRef:
    """The model a job trains: a zero-argument factory and a fingerprint of what it builds."""

    factory: Callable[[], nn.Module]
    fingerprint: str


@dataclass(frozen=True, eq=False)
class Job:
    """One engine call: ``label`` names it for people (``"l2 / 5 fold(s)"``)."""

    label: str
    recipe: Recipe
    members: Members
    job_seed: int
    model: ModelRef
    outputs: tuple[str, ...] = OUTPUTS  # the per-example arrays to record (engine.train)

    def key(self, data_fingerprint: str) -> str:
        """Content hash: the same data, model, recipe, seeds, masks and outputs give the same key."""
        what = {"v": FORMAT_VERSION, "recipe": self.recipe.to_dict(), "seeds": self.members.seeds.tolist(),
                "job_seed": self.job_seed, "data": data_fingerprint, "model": self.model.fingerprint}
        if self.outputs != OUTPUTS:  # only then: jobs stored before outputs could be chosen keep their keys
            what["outputs"] = list(self.outputs)
        h = hashlib.sha256()
        h.update(json.dumps(what, sort_keys=True).encode())
        for mask in (self.members.train_mask, self.members.val_mask):
            h.update(str(mask.shape).encode())
            h.update(np.packbits(mask, axis=None).tobytes())
        return h.hexdigest()[:20]


def chunked(n_members: int, chunk: int) -> list[range]:
    """Member index ranges of at most ``chunk``: a job per range, so an interrupt loses one."""
    return [range(s, min(s + chunk, n_members)) for s in range(0, n_members, chunk)]


# ══ diagnose: a stratified validation split per seed ═══════════════════════════════════
def validation_members(ex: Examples, *, seeds: int, val_fraction: float, seed: int) -> Members:
    """Member i trains on a stratified ``1 - val_fraction`` of the pool (split seed ``seed + i``)
    and validates on the rest; raises when the split leaves a class out."""
    from sklearn.model_selection import StratifiedShuffleSplit

    n_pool, c, clean = ex.n_pool, ex.n_classes, ex.clean[: ex.n_pool]
    n_val = int(round(val_fraction * n_pool))
    if n_val < c or n_pool - n_val < c:
        raise InvalidInputError(
            f"a validation fraction of {val_fraction} leaves {n_pool - n_val} training and {n_val} "
            f"validation examples, too few for {c} classes; use more data or another fraction")
    counts = np.bincount(clean, minlength=c)
    if counts.min() < 2:
        raise InvalidInputError(
            f"{ex.class_name(int(counts.argmin()))} has {int(counts.min())} training example(s); a stratified "
            "validation split needs at least 2 per class; add examples of it or drop that class")
    train_mask = np.zeros((seeds, len(ex.y)), dtype=bool)
    val_mask = np.zeros_like(train_mask)
    for i in range(seeds):
        split = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed + i)
        tr, va = next(split.split(np.zeros(n_pool), clean))
        train_mask[i, tr] = True
        val_mask[i, va] = True
    return Members(np.arange(seed, seed + seeds), train_mask, val_mask)


# ══ compare and sweep: stratified k-fold ═══════════════════════════════════════════════
@dataclass(frozen=True, eq=False)
class Folds:
    """The same splits for every job of a study: (K, N) masks over all examples.

    ``val`` is the full validation fold (scored on clean labels); ``engine_val`` is what the
    engine validates on (early stopping, curves): the fold without flipped labels.
    """

    train: np.ndarray  # (K, N) bool
    val: np.ndarray  # (K, N) bool
    engine_val: np.ndarray  # (K, N) bool
    seeds: np.ndarray  # (K,)

    def members(self) -> Members:
        return Members(self.seeds, self.train, self.engine_val)


def make_folds(ex: Examples, *, pool_idx: np.ndarray, folds: int, repeats: int, seed: int) -> Folds:
    """Stratified (on clean labels) k-fold of the pool examples ``pool_idx``; raises on too few per class."""
    from rotelab.measures.folds import fold_masks, stratified_folds

    splits = stratified_folds(ex.clean[pool_idx], n_folds=folds, n_repeats=repeats, seed=seed, classes=ex.classes)
    splits = [(pool_idx[tr], pool_idx[va]) for tr, va in splits]
    train, val = fold_masks(splits, len(ex.y))
    return Folds(train, val, val & ~ex.flipped[None, :], np.arange(seed, seed + len(splits)))


# ══ adapt: an inner validation split inside each fold's training part ═══════════════════
_INNER_STREAM = 0x1AAE5  # keeps the inner-split draws apart from other seeded streams


@dataclass(frozen=True, eq=False)
class InnerSplit:
    """Each fold's training part cut in two: ``train`` (what members fit) and ``val`` (what
    adaptive schemes rank and steer on, and what selects a member per fold), each (F, N) bool.
    Both lie inside the fold's training part, so the fold's scored examples stay unseen."""

    train: np.ndarray  # (F, N) bool
    val: np.ndarray  # (F, N) bool

    def members(self, seeds: np.ndarray, per_fold: int) -> Members:
        """``per_fold`` members per fold, fold by fold (member f·P + j is fold f's j-th), with seeds
        ``seeds`` (F·P,); each trains on its fold's inner training part, validates on its inner val."""
        rows = np.repeat(np.arange(len(self.train)), per_fold)
        return Members(np.asarray(seeds, dtype=np.int64), self.train[rows], self.val[rows])


def inner_split(f: Folds, ex: Examples, *, fraction: float, seed: int) -> InnerSplit:
    """Carve a ``fraction`` of each fold's training examples out as its inner validation set,
    stratified on the labels as given (flipped ones included: a user does not know which are
    wrong), seeded per fold. Raises when a fold's inner part would lose a class."""
    from sklearn.model_selection import StratifiedShuffleSplit

    train = np.zeros_like(f.train)
    val = np.zeros_like(f.train)
    for i, row in enumerate(f.train):
        idx = np.flatnonzero(row)
        n_val = int(round(fraction * len(idx)))
        if n_val < ex.n_classes or len(idx) - n_val < ex.n_classes:
            raise InvalidInputError(
                f"an inner validation fraction of {fraction} of fold {i}'s {len(idx)} training examples leaves "
                f"{len(idx) - n_val} to train and {n_val} to validate on, too few for {ex.n_classes} classes; "
                "use more data or another --inner-fraction")
        labels = ex.y[idx]
        strat = labels if np.bincount(labels, minlength=ex.n_classes).min() >= 2 else None
        split = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=(seed * 7919 + i) ^ _INNER_STREAM)
        tr, va = next(split.split(np.zeros(len(idx)), strat if strat is not None else np.zeros(len(idx))))
        train[i, idx[tr]] = True
        val[i, idx[va]] = True
    return InnerSplit(train, val)


def subset_index(clean: np.ndarray, noisy: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` pool examples, stratified on (clean label, flipped) when every
    stratum has two examples, else on the clean label."""
    if n == len(clean):
        return np.arange(n)
    from sklearn.model_selection import train_test_split

    strata = clean * 2 + noisy.astype(np.int64)
    _, counts = np.unique(strata, return_counts=True)
    if counts.min() < 2 or len(counts) > min(n, len(clean) - n):
        strata = clean
    idx, _ = train_test_split(np.arange(len(clean)), train_size=n, random_state=seed, stratify=strata)
    return np.sort(idx)


# ══ memorization: random subsets ═══════════════════════════════════════════════════════
def subset_size(subset: float, n_pool: int) -> int:
    """Examples in each model's subset; raises when no example could be left in or out."""
    n_sub = round(subset * n_pool)
    if n_sub < 1:
        raise InvalidInputError(
            f"subset {subset} of {n_pool} training examples puts no example in a model's subset; "
            "use a larger --subset")
    if n_sub >= n_pool:
        raise InvalidInputError(
            f"subset {subset} of {n_pool} training examples puts every example in every model's subset, "
            "so no model leaves one out; use a smaller --subset")
    return n_sub


def subset_masks(n_models: int, *, n_pool: int, n_subset: int, seed: int, start: int = 0) -> np.ndarray:
    """Bool (n_models, n_pool): row m is model ``start + m``'s subset of ``n_subset`` examples.

    Row m depends only on ``(seed, start + m, n_pool, n_subset)``, so the models of a small
    study are the first models of a larger one.
    """
    mask = np.zeros((n_models, n_pool), dtype=bool)
    for i in range(n_models):
        rng = np.random.default_rng([seed, start + i, _SUBSET_STREAM])
        mask[i, rng.choice(n_pool, size=n_subset, replace=False)] = True
    return mask


def check_coverage(pool_mask: np.ndarray, *, n_subset: int, seed: int) -> None:
    """Every training example needs a model that trained on it and one that did not."""
    n_models, n_pool = pool_mask.shape
    n_in = pool_mask.sum(axis=0)
    bad = int(((n_in == 0) | (n_in == n_models)).sum())
    if bad == 0:
        return
    needed = models_needed(n_in, n_models, n_pool=n_pool, n_subset=n_subset, seed=seed)
    fix = f"use at least {needed} models (--models {needed})" if needed else "use more models or a subset nearer 0.5"
    who = "1 model leaves" if n_models == 1 else f"{n_models} models leave"
    raise InvalidInputError(
        f"{who} {bad} of {n_pool} training examples without both a model that trained on them and one "
        f"that did not (subset {n_subset} of {n_pool}); {fix}")


def models_needed(n_in: np.ndarray, n_models: int, *, n_pool: int, n_subset: int, seed: int) -> int | None:
    """Smallest model count whose (prefix of the same) subsets cover every example both ways."""
    n_in = n_in.astype(np.int64).copy()
    m = n_models
    while m < _MAX_MODELS_SEARCH:
        block = max(16, m // 2)
        masks = subset_masks(block, n_pool=n_pool, n_subset=n_subset, seed=seed, start=m)
        cum = n_in[None, :] + np.cumsum(masks, axis=0)  # (block, n_pool)
        total = m + 1 + np.arange(block)[:, None]
        ok = ((cum > 0) & (cum < total)).all(axis=1)
        if ok.any():
            return int(m + 1 + np.argmax(ok))
        n_in, m = cum[-1], m + block
    return None


def subset_members(pool_mask: np.ndarray, models: range, n_examples: int, *, seed: int) -> Members:
    """Train on the subset; validate (early stopping only) on the rest of the pool; never on test."""
    k, n_pool = pool_mask.shape
    train = np.zeros((k, n_examples), dtype=bool)
    train[:, :n_pool] = pool_mask
    val = np.zeros_like(train)
    val[:, :n_pool] = ~pool_mask
    seeds = np.asarray([seed * SEED_STRIDE + m for m in models], dtype=np.int64)
    return Members(seeds, train, val)


__all__ = ["Examples", "Folds", "InnerSplit", "Job", "ModelRef", "inner_split", "SEED_STRIDE", "check_coverage", "chunked", "make_folds",
           "models_needed", "subset_index", "subset_masks", "subset_members", "subset_size", "validation_members"]
