"""Summaries for k-fold cross-validation: one value per fold in, a table cell out.

``rotelab compare`` builds a table whose rows are techniques and whose cells summarize
per-fold values: :func:`fold_summary` gives mean ± a Student-t interval, and
:func:`paired_difference` tests a technique against the baseline fold by fold. Folds
come from :func:`stratified_folds`; :func:`fold_masks` turns them into the
``(n_models, n_samples)`` bool masks the other measures take.

Caution: k-fold training sets overlap, so fold values are not independent and the plain
paired t-test is too eager to call a difference significant. For (repeated) k-fold pass
``test_train_ratio`` to :func:`paired_difference` to get the Nadeau & Bengio (2003)
corrected resampled t-test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from rotelab.errors import InvalidInputError
from rotelab.validation import check_array, check_float, check_int, check_labels, class_name

#: ``paired_t``: plain paired t-test; ``corrected_t``: Nadeau & Bengio corrected resampled t-test.
Method = Literal["paired_t", "corrected_t"]

#: Validation fraction of the single split used when ``n_folds == 1``.
HOLDOUT_FRACTION = 0.2

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class FoldSummary:
    """Mean, spread and Student-t confidence interval of per-fold values.

    ``std`` uses ``ddof=1``; for ``n == 1`` it and the interval are NaN.
    """

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedDifference:
    """Fold-by-fold comparison of ``b`` against ``a``; ``mean_diff`` is mean(b − a).

    ``mean_diff > 0`` means ``b`` scored higher: better for a ``*_score``, worse for a
    ``*_loss``. ``p_value`` is two-sided; ``method`` names the test used.
    """

    mean_diff: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    n: int
    method: Method


# ── validation ─────────────────────────────────────────────────────────────────────────
def _check_fold_values(name: str, values: Any) -> np.ndarray:
    """Return ``values`` as float64 of shape (n_folds,), non-empty and finite."""
    arr = check_array(name, values, shape="(n_folds,)").astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InvalidInputError(
            f"{name} contains NaN or infinite values in {int(bad.sum())} of {arr.size} folds; "
            "a fold that failed must be rerun or dropped from every technique"
        )
    return arr


def _check_confidence(confidence: Any) -> float:
    return check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)


def _t_quantile(confidence: float, dof: int) -> float:
    """Two-sided critical value: P(|T| <= q) = confidence for T ~ Student t(dof)."""
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


# ── summaries ──────────────────────────────────────────────────────────────────────────
def fold_summary(values: Any, *, confidence: float = 0.95, test_train_ratio: float | None = None) -> FoldSummary:
    """Mean, std (ddof=1) and Student-t interval of per-fold values.

    Parameters
    ----------
    values : array-like of shape (n_folds,)
        One value per fold (any direction: a score or a loss), NaN-free.
    confidence : float in (0, 1)
        Coverage of the interval ``mean ± t_{n-1} · std · sqrt(f)`` with ``f = 1/n``, or, when
        ``test_train_ratio`` (``n_test / n_train`` of a fold) is given, ``f = 1/n + n_test/n_train``:
        Nadeau & Bengio's (2003) correction for folds whose training sets overlap, without which
        the interval of a (repeated) k-fold mean is too narrow (the same correction as
        :func:`paired_difference`'s).

    Returns
    -------
    FoldSummary
        ``std``, ``ci_low`` and ``ci_high`` are NaN when ``n == 1``.

    >>> s = fold_summary([0.80, 0.85, 0.90])
    >>> round(s.mean, 4), round(s.std, 4), s.n, round(s.ci_low, 4), round(s.ci_high, 4)
    (0.85, 0.05, 3, 0.7258, 0.9742)
    """
    x = _check_fold_values("values", values)
    confidence = _check_confidence(confidence)
    if test_train_ratio is not None:
        test_train_ratio = check_float("test_train_ratio", test_train_ratio, low=0.0, low_open=True)
    n = x.size
    mean = float(x.mean())
    if n == 1:
        return FoldSummary(mean=mean, std=math.nan, n=1, ci_low=math.nan, ci_high=math.nan)
    std = float(x.std(ddof=1))
    half = _t_quantile(confidence, n - 1) * std * math.sqrt(1.0 / n + (test_train_ratio or 0.0))
    return FoldSummary(mean=mean, std=std, n=n, ci_low=mean - half, ci_high=mean + half)


def paired_difference(
    a: Any,
    b: Any,
    *,
    test_train_ratio: float | None = None,
    confidence: float = 0.95,
) -> PairedDifference:
    """Paired t-test of ``b`` against ``a`` over the same folds.

    With ``d = b − a`` and ``s²`` its variance (ddof=1), ``t = mean(d) / sqrt(f · s²)`` on
    ``n − 1`` degrees of freedom, where ``f = 1/n`` (plain paired t-test) or, when
    ``test_train_ratio`` is given, ``f = 1/n + n_test/n_train`` (Nadeau & Bengio 2003
    corrected resampled t-test). Use the correction for (repeated) k-fold, whose training
    sets overlap: for ``r`` repeats of ``k``-fold pass all ``k·r`` fold values and
    ``test_train_ratio = 1 / (k − 1)``.

    Parameters
    ----------
    a, b : array-like of shape (n_folds,)
        Per-fold values of the baseline (``a``) and the candidate (``b``), fold ``i`` of
        both computed on the same split; NaN-free.
    test_train_ratio : float > 0 or None
        ``n_test / n_train`` of a fold; ``None`` for the plain paired t-test.
    confidence : float in (0, 1)
        Coverage of the interval ``mean_diff ± t_{n-1} · sqrt(f · s²)``.

    Returns
    -------
    PairedDifference
        ``mean_diff`` is mean(b − a): positive when ``b`` is higher. If every difference
        is the same (zero variance), ``p_value`` is 1.0 when it is 0 and 0.0 otherwise,
        ``t`` is 0 or ±inf and the interval collapses onto ``mean_diff``. With a single
        fold ``t``, ``p_value`` and the interval are NaN.

    >>> r = paired_difference([0, 0, 0], [1, 2, 3])
    >>> r.mean_diff, round(r.t, 4), round(r.p_value, 4), r.method
    (2.0, 3.4641, 0.0742, 'paired_t')
    """
    x = _check_fold_values("a", a)
    y = _check_fold_values("b", b)
    if x.size != y.size:
        raise InvalidInputError(f"inconsistent numbers of folds: {x.size} and {y.size}")
    if test_train_ratio is not None:
        test_train_ratio = check_float("test_train_ratio", test_train_ratio, low=0.0, low_open=True)
    confidence = _check_confidence(confidence)

    method: Method = "paired_t" if test_train_ratio is None else "corrected_t"
    d = y - x
    n = d.size
    mean = float(d.mean())
    if n < 2:
        nan = math.nan
        return PairedDifference(
            mean_diff=mean, ci_low=nan, ci_high=nan, t=nan, p_value=nan, n=n, method=method
        )
    if np.all(d == d[0]):  # exact test: np.var of a constant can come out as ~1e-34, not 0
        mean = float(d[0])
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
        return PairedDifference(mean_diff=mean, ci_low=mean, ci_high=mean, t=t, p_value=p, n=n, method=method)
    factor = 1.0 / n + (test_train_ratio or 0.0)
    se = math.sqrt(factor * float(d.var(ddof=1)))
    t = mean / se
    p = float(2.0 * stats.t.sf(abs(t), n - 1))
    half = _t_quantile(confidence, n - 1) * se
    return PairedDifference(
        mean_diff=mean, ci_low=mean - half, ci_high=mean + half, t=t, p_value=p, n=n, method=method
    )


def holm_adjusted(p_values: Any) -> np.ndarray:
    """Holm's step-down adjustment of ``m`` p-values tested together (Holm 1979), as Demšar
    (2006) advises for several classifiers each compared with one control: the i-th smallest
    becomes ``max_{j<=i} min(1, (m − j + 1) · p_(j))``. A p-value below α after adjustment
    keeps the family-wise error rate at α. NaN entries (no test) stay NaN and do not count in ``m``.

    Parameters
    ----------
    p_values : array-like of float of shape (m,)

    Returns
    -------
    ndarray of float of shape (m,), in the input's order.

    >>> holm_adjusted([0.01, 0.04, 0.03, float("nan")]).round(2).tolist()
    [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


# ── folds ──────────────────────────────────────────────────────────────────────────────
def stratified_folds(labels: Any, *, n_folds: int, n_repeats: int = 1, seed: int = 0,
                     classes: Sequence[str] = ()) -> list[Split]:
    """Seeded stratified k-fold splits, repeated ``n_repeats`` times.

    Within each repeat the validation sets are disjoint and cover every sample once,
    and each holds every class in proportion. ``n_folds == 1`` means one stratified
    80/20 train/validation split per repeat instead.

    Parameters
    ----------
    labels : array-like of int of shape (n_samples,)
        Class indices to stratify on (the clean labels, if label noise was injected).
    n_folds : int >= 1
        Folds per repeat; at most the size of the smallest class.
    n_repeats : int >= 1
        Independent reshuffles.
    seed : int in [0, 2**32)
        The same seed gives the same splits; a run with more repeats starts with the
        splits of a run with fewer.
    classes : sequence of str, optional
        Class names by label, only to name a class in an error.

    Returns
    -------
    list of (train_idx, val_idx)
        ``n_folds · n_repeats`` pairs (``n_repeats`` when ``n_folds == 1``), repeat by
        repeat; each is a sorted int64 array of sample indices.
    """
    arr = np.asarray(labels)
    y = check_labels("labels", arr, n_samples=arr.size)
    if y.size == 0:
        raise InvalidInputError("labels is empty: need at least one sample to split")
    n_folds = check_int("folds", n_folds, minimum=1)
    n_repeats = check_int("repeats", n_repeats, minimum=1)
    seed = check_int("seed", seed, minimum=0, maximum=2**32 - 1)

    class_names, (classes, counts) = classes, np.unique(y, return_counts=True)
    smallest = int(np.argmin(counts))  # first (lowest) class among ties
    small_count = int(counts[smallest])
    small_class = class_name(int(classes[smallest]), class_names)

    from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedShuffleSplit

    if small_count < 2:  # neither k folds nor one train/validation split can hold it on both sides
        raise InvalidInputError(
            f"a stratified split needs at least 2 samples per class, but {small_class} has only "
            f"{small_count}; add samples of it or drop that class"
        )
    if n_folds == 1:
        n_val = math.ceil(HOLDOUT_FRACTION * y.size)  # as StratifiedShuffleSplit rounds it
        if min(n_val, y.size - n_val) < classes.size:
            raise InvalidInputError(
                f"a {1 - HOLDOUT_FRACTION:.0%}/{HOLDOUT_FRACTION:.0%} split of {y.size} samples "
                f"leaves {y.size - n_val} for training and {n_val} for validation, too few for "
                f"one of each of {classes.size} classes; use more samples"
            )
        splitter: Any = StratifiedShuffleSplit(
            n_splits=n_repeats, test_size=HOLDOUT_FRACTION, random_state=seed
        )
    else:
        if n_folds > small_count:
            raise InvalidInputError(
                f"folds={n_folds} is more than the {small_count} samples of the smallest class "
                f"({small_class}), so some validation folds would miss it; "
                f"use at most {small_count} folds"
            )
        splitter = RepeatedStratifiedKFold(n_splits=n_folds, n_repeats=n_repeats, random_state=seed)
    index = np.zeros((y.size, 1))  # only the labels matter for the split
    return [
        (np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64))
        for tr, va in splitter.split(index, y)
    ]


def fold_masks(splits: Sequence[Split], n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``(train_idx, val_idx)`` pairs into bool masks, one row per split (model).

    Parameters
    ----------
    splits : sequence of (train_idx, val_idx)
        As returned by :func:`stratified_folds`; indices in ``[0, n_samples)``.
    n_samples : int >= 1

    Returns
    -------
    train_mask, val_mask : bool ndarray of shape (n_splits, n_samples)
        True where the sample is in that split's training / validation set.
    """
    n_samples = check_int("n_samples", n_samples, minimum=1)
    splits = list(splits)
    if not splits:
        raise InvalidInputError("splits is empty: need at least one (train_idx, val_idx) pair")
    train = np.zeros((len(splits), n_samples), dtype=bool)
    val = np.zeros((len(splits), n_samples), dtype=bool)
    for i, split in enumerate(splits):
        try:
            train_idx, val_idx = split
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"split {i} must be a (train_idx, val_idx) pair, got {split!r:.60}"
            ) from None
        for mask, part, idx in ((train, "train", train_idx), (val, "validation", val_idx)):
            idx = np.asarray(idx)
            if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
                raise InvalidInputError(
                    f"split {i}: {part} indices must be a 1-D integer array, got dtype {idx.dtype} "
                    f"and shape {idx.shape}"
                )
            if idx.size and (idx.min() < 0 or idx.max() >= n_samples):
                raise InvalidInputError(
                    f"split {i}: {part} index {idx.min() if idx.min() < 0 else idx.max()} is out of "
                    f"range for {n_samples} samples (0..{n_samples - 1})"
                )
            mask[i, idx] = True
        overlap = int((train[i] & val[i]).sum())
        if overlap:
            raise InvalidInputError(
                f"split {i} puts {overlap} samples in both train and validation; "
                "a validation sample must be held out"
            )
    return train, val
