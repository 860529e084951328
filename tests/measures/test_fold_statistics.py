"""Tests for rotelab.measures.folds: fold summaries, paired tests, stratified folds."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats

from rotelab.errors import InvalidInputError
from rotelab.measures import folds
from rotelab.measures.folds import (
    FoldSummary,
    PairedDifference,
    fold_masks,
    fold_summary,
    paired_difference,
    stratified_folds,
)

# Student t with 2 dof has closed forms, so the 3-fold cases below are worked by hand:
#   two-sided critical value  q = (2u - 1) / sqrt(2u(1 - u)),  u = 0.975
#   two-sided p-value         p = 1 - |t| / sqrt(t^2 + 2)
T_975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # = 4.302652729...


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240501)


@pytest.fixture
def labels(rng: np.random.Generator) -> np.ndarray:
    """Imbalanced labels (n_samples,): 40 / 25 / 12 samples of classes 0 / 1 / 2, shuffled."""
    return rng.permutation(np.repeat([0, 1, 2], [40, 25, 12]))


# ── slow references ────────────────────────────────────────────────────────────────────
def corrected_t_reference(a, b, ratio, confidence=0.95):
    """Nadeau & Bengio (2003) corrected resampled t-test, written out with loops."""
    d = [float(y) - float(x) for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    var = sum((di - mean) ** 2 for di in d) / (n - 1)
    se = math.sqrt((1 / n + ratio) * var)
    t = mean / se
    p = 2 * (1 - stats.t.cdf(abs(t), n - 1))
    q = stats.t.ppf(1 - (1 - confidence) / 2, n - 1)
    return mean, t, p, mean - q * se, mean + q * se


# ── fold_summary ───────────────────────────────────────────────────────────────────────
def test_fold_summary_by_hand():
    # mean 0.85; deviations -0.05, 0, 0.05 -> var 0.005 / 2 = 0.0025 -> std 0.05
    s = fold_summary([0.80, 0.85, 0.90])
    half = T_975_DF2 * 0.05 / math.sqrt(3)  # 4.3027 * 0.028868 = 0.124207
    assert isinstance(s, FoldSummary)
    assert s.n == 3
    assert s.mean == pytest.approx(0.85)
    assert s.std == pytest.approx(0.05)
    assert s.ci_low == pytest.approx(0.85 - half) and s.ci_low == pytest.approx(0.725793, abs=1e-6)
    assert s.ci_high == pytest.approx(0.85 + half) and s.ci_high == pytest.approx(0.974207, abs=1e-6)


def test_fold_summary_matches_scipy_interval(rng):
    x = rng.normal(0.7, 0.05, size=10)
    s = fold_summary(x, confidence=0.9)
    low, high = stats.t.interval(0.9, 9, loc=x.mean(), scale=stats.sem(x))
    np.testing.assert_allclose([s.mean, s.std, s.ci_low, s.ci_high], [x.mean(), x.std(ddof=1), low, high])


def test_fold_summary_single_fold_has_nan_spread():
    s = fold_summary(np.array([0.9]))
    assert (s.mean, s.n) == (0.9, 1)
    assert math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_fold_summary_constant_values_give_degenerate_interval():
    s = fold_summary([0.5, 0.5, 0.5, 0.5])
    assert (s.mean, s.std, s.ci_low, s.ci_high) == (0.5, 0.0, 0.5, 0.5)


def test_fold_summary_is_frozen():
    s = fold_summary([1.0, 2.0])
    with pytest.raises(AttributeError):
        s.mean = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([[0.1, 0.2]], {}, r"values must have shape \(n_folds,\), got shape \(1, 2\)"),
        ([], {}, "values is empty"),
        (["a", "b"], {}, "values must be numeric"),
        ([0.1, np.nan, 0.3], {}, "NaN or infinite values in 1 of 3 folds"),
        ([0.1, np.inf], {}, "NaN or infinite values in 1 of 2 folds"),
        ([0.1, 0.2], {"confidence": 1.0}, r"confidence must be in \(0.0, 1.0\), got 1.0"),
        ([0.1, 0.2], {"confidence": 0}, r"confidence must be in \(0.0, 1.0\), got 0.0"),
        ([0.1, 0.2], {"confidence": "high"}, "confidence must be a number"),
    ],
)
def test_fold_summary_rejects(values, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        fold_summary(values, **kwargs)


# ── paired_difference ──────────────────────────────────────────────────────────────────
def test_paired_t_by_hand():
    # d = b - a = [1, 2, 3]: mean 2, var 1, se = 1/sqrt(3), t = 2 sqrt(3) = 3.4641 on 2 dof
    r = paired_difference([10, 20, 30], [11, 22, 33])
    t = 2 * math.sqrt(3)
    assert isinstance(r, PairedDifference)
    assert (r.n, r.method) == (3, "paired_t")
    assert r.mean_diff == pytest.approx(2.0)
    assert r.t == pytest.approx(t)
    assert r.p_value == pytest.approx(1 - t / math.sqrt(t**2 + 2))  # 1 - 2√3/√14 = 0.074180
    assert r.p_value == pytest.approx(0.074180, abs=1e-6)
    assert r.ci_low == pytest.approx(2 - T_975_DF2 / math.sqrt(3))  # 2 - 2.4841 = -0.4841
    assert r.ci_high == pytest.approx(2 + T_975_DF2 / math.sqrt(3))


def test_corrected_t_by_hand():
    # 3-fold: n_test / n_train = 1/2; variance factor 1/3 + 1/2 = 5/6, t = 2 / sqrt(5/6) = 2.1909
    r = paired_difference([0, 0, 0], [1, 2, 3], test_train_ratio=0.5)
    t = 2 / math.sqrt(5 / 6)
    assert r.method == "corrected_t"
    assert r.t == pytest.approx(t)
    assert r.p_value == pytest.approx(1 - t / math.sqrt(t**2 + 2))  # = 0.159832
    assert r.p_value == pytest.approx(0.159832, abs=1e-6)
    assert r.ci_low == pytest.approx(2 - T_975_DF2 * math.sqrt(5 / 6))
    assert r.ci_high == pytest.approx(2 + T_975_DF2 * math.sqrt(5 / 6))


@pytest.mark.parametrize("n", [2, 5, 30])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_paired_t_matches_scipy_ttest_rel(rng, n, confidence):
    a = rng.normal(0.8, 0.03, size=n)
    b = a + rng.normal(0.01, 0.02, size=n)
    r = paired_difference(a, b, confidence=confidence)
    ref = stats.ttest_rel(b, a)
    ci = ref.confidence_interval(confidence)
    np.testing.assert_allclose(
        [r.mean_diff, r.t, r.p_value, r.ci_low, r.ci_high],
        [np.mean(b - a), ref.statistic, ref.pvalue, ci.low, ci.high],
        rtol=1e-10,
    )


@pytest.mark.parametrize(("n", "ratio"), [(5, 1 / 4), (10, 1 / 9), (50, 1 / 4)])
def test_corrected_t_matches_slow_formula(rng, n, ratio):
    a = rng.normal(0.8, 0.03, size=n)
    b = a + rng.normal(-0.005, 0.02, size=n)
    r = paired_difference(a, b, test_train_ratio=ratio, confidence=0.9)
    np.testing.assert_allclose(
        [r.mean_diff, r.t, r.p_value, r.ci_low, r.ci_high], corrected_t_reference(a, b, ratio, 0.9), rtol=1e-9
    )


def test_corrected_t_is_more_conservative(rng):
    a = rng.normal(0.8, 0.03, size=10)
    b = a + rng.normal(0.01, 0.01, size=10)
    plain = paired_difference(a, b)
    corrected = paired_difference(a, b, test_train_ratio=1 / 9)
    assert corrected.p_value > plain.p_value
    assert corrected.ci_high - corrected.ci_low > plain.ci_high - plain.ci_low


def test_direction_is_b_minus_a():
    r = paired_difference([0.9, 0.8, 0.85], [0.7, 0.7, 0.6])
    assert r.mean_diff < 0 and r.t < 0 and r.ci_low < r.mean_diff < r.ci_high


@pytest.mark.parametrize("ratio", [None, 0.25])
def test_identical_values_give_p_one(ratio):
    r = paired_difference([0.8, 0.9, 0.7], [0.8, 0.9, 0.7], test_train_ratio=ratio)
    assert (r.mean_diff, r.t, r.p_value, r.ci_low, r.ci_high, r.n) == (0.0, 0.0, 1.0, 0.0, 0.0, 3)


@pytest.mark.parametrize("ratio", [None, 0.25])
def test_constant_nonzero_difference_gives_p_zero(ratio):
    # dyadic fractions, so every b - a is exactly 0.5 in floating point
    a = np.array([0.5, 0.25, 0.75])
    r = paired_difference(a, a + 0.5, test_train_ratio=ratio)
    assert (r.mean_diff, r.p_value, r.ci_low, r.ci_high) == (0.5, 0.0, 0.5, 0.5)
    assert r.t == math.inf
    assert paired_difference(a + 0.5, a).t == -math.inf


def test_single_fold_gives_nan_test():
    r = paired_difference([0.8], [0.9])
    assert r.n == 1 and r.mean_diff == pytest.approx(0.1)
    assert all(math.isnan(v) for v in (r.t, r.p_value, r.ci_low, r.ci_high))


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        ([1, 2, 3, 4, 5], [1, 2, 3, 4], {}, "inconsistent numbers of folds: 5 and 4"),
        ([[1, 2]], [1, 2], {}, r"a must have shape \(n_folds,\)"),
        ([1, 2], [1, np.nan], {}, "b contains NaN or infinite values in 1 of 2 folds"),
        ([], [], {}, "a is empty"),
        ([1, 2], [1, 3], {"test_train_ratio": 0}, r"test_train_ratio must be in \(0.0, inf\], got 0.0"),
        ([1, 2], [1, 3], {"test_train_ratio": -0.2}, "test_train_ratio must be in"),
        ([1, 2], [1, 3], {"test_train_ratio": np.nan}, "test_train_ratio must be finite"),
        ([1, 2], [1, 3], {"confidence": 1.5}, "confidence must be in"),
    ],
)
def test_paired_difference_rejects(a, b, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        paired_difference(a, b, **kwargs)


# ── stratified_folds ───────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(("n_folds", "n_repeats"), [(2, 1), (5, 1), (5, 3), (12, 2)])
def test_folds_partition_each_repeat(labels, n_folds, n_repeats):
    splits = stratified_folds(labels, n_folds=n_folds, n_repeats=n_repeats, seed=3)
    assert len(splits) == n_folds * n_repeats
    n = len(labels)
    for r in range(n_repeats):
        repeat = splits[r * n_folds : (r + 1) * n_folds]
        val_all = np.concatenate([va for _, va in repeat])
        np.testing.assert_array_equal(np.sort(val_all), np.arange(n))  # every sample validated once
        for tr, va in repeat:
            assert tr.dtype == np.int64 and va.dtype == np.int64
            assert np.intersect1d(tr, va).size == 0  # disjoint
            np.testing.assert_array_equal(np.union1d(tr, va), np.arange(n))  # and complete
            assert np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)  # sorted


@pytest.mark.parametrize("n_folds", [1, 4, 12])
def test_folds_are_stratified(labels, n_folds):
    overall = np.bincount(labels) / len(labels)
    for _, va in stratified_folds(labels, n_folds=n_folds, n_repeats=2, seed=0):
        counts = np.bincount(labels[va], minlength=3)
        # each class within one sample of its proportional share
        assert np.all(np.abs(counts - overall * len(va)) <= 1.0 + 1e-9)
        assert np.all(counts >= 1)


def test_folds_are_deterministic_by_seed(labels):
    one = stratified_folds(labels, n_folds=5, n_repeats=2, seed=7)
    two = stratified_folds(labels, n_folds=5, n_repeats=2, seed=7)
    other = stratified_folds(labels, n_folds=5, n_repeats=2, seed=8)
    for (tr1, va1), (tr2, va2) in zip(one, two):
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_array_equal(va1, va2)
    assert any(not np.array_equal(va1, va2) for (_, va1), (_, va2) in zip(one, other))


@pytest.mark.parametrize("n_folds", [1, 5])
def test_more_repeats_extend_fewer(labels, n_folds):
    short = stratified_folds(labels, n_folds=n_folds, n_repeats=1, seed=11)
    long = stratified_folds(labels, n_folds=n_folds, n_repeats=3, seed=11)
    for (tr1, va1), (tr2, va2) in zip(short, long):
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_array_equal(va1, va2)
    assert not all(np.array_equal(va1, va2) for (_, va1), (_, va2) in zip(long[:n_folds], long[n_folds:]))


def test_single_fold_is_an_80_20_split(labels):
    splits = stratified_folds(labels, n_folds=1, n_repeats=3, seed=0)
    assert len(splits) == 3
    for tr, va in splits:
        assert len(va) == math.ceil(0.2 * len(labels)) and len(tr) + len(va) == len(labels)
        assert np.intersect1d(tr, va).size == 0
    assert not np.array_equal(splits[0][1], splits[1][1])


def test_folds_up_to_smallest_class_are_allowed(labels):
    assert len(stratified_folds(labels, n_folds=12)) == 12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_folds": 0}, "folds must be >= 1, got 0"),
        ({"n_folds": 2.5}, "folds must be a whole number, got 2.5"),
        (
            {"n_folds": 13},
            r"folds=13 is more than the 12 samples of the smallest class \(class 2\).*use at most 12 folds",
        ),
        ({"n_folds": 5, "n_repeats": 0}, "repeats must be >= 1, got 0"),
        ({"n_folds": 5, "seed": -1}, "seed must be >= 0, got -1"),
    ],
)
def test_stratified_folds_rejects_settings(labels, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        stratified_folds(labels, **kwargs)


@pytest.mark.parametrize(
    ("y", "n_folds", "match"),
    [
        ([], 2, "labels is empty"),
        ([[0, 1], [1, 0]], 2, r"labels must have shape \(n_samples,\)"),
        ([0.0, 0.5, 1.0], 2, "labels must hold whole-number class indices"),
        ([0, -1, 1], 2, "labels has a negative label"),
        ([0, 0, 0, 1, 1, 1, 2], 1, "at least 2 samples per class, but class 2 has only 1"),
        ([0, 0, 1, 1, 2, 2, 3, 3], 1, "leaves 6 for training and 2 for validation, too few for one of each of 4"),
    ],
)
def test_stratified_folds_rejects_labels(y, n_folds, match):
    with pytest.raises(InvalidInputError, match=match):
        stratified_folds(y, n_folds=n_folds)


def test_a_class_of_one_sample_gets_a_fix_that_works():
    """k folds of a class with one sample cannot be fixed by fewer folds (folds=1 needs 2 too):
    the message says to add samples, and names the class as the user knows it."""
    y = [0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(InvalidInputError, match=r"but class 'aardvark' \(label 2\) has only 1; add samples of it"):
        stratified_folds(y, n_folds=3, classes=("bee", "cat", "aardvark"))
    with pytest.raises(InvalidInputError, match=r"smallest class \(class 'cat' \(label 1\)\).*use at most 2 folds"):
        stratified_folds([0, 0, 0, 1, 1, 2, 2, 2], n_folds=3, classes=("bee", "cat", "dog"))


# ── fold_masks ─────────────────────────────────────────────────────────────────────────
def test_fold_masks_match_indices(labels):
    splits = stratified_folds(labels, n_folds=4, n_repeats=2, seed=1)
    train, val = fold_masks(splits, len(labels))
    assert train.shape == val.shape == (8, len(labels)) and train.dtype == val.dtype == bool
    assert not (train & val).any() and (train | val).all()
    for i, (tr, va) in enumerate(splits):
        np.testing.assert_array_equal(np.flatnonzero(train[i]), tr)
        np.testing.assert_array_equal(np.flatnonzero(val[i]), va)
    np.testing.assert_array_equal(val[:4].sum(axis=0), np.ones(len(labels)))  # once per repeat


def test_fold_masks_by_hand():
    train, val = fold_masks([(np.array([0, 1]), np.array([2])), ([2], [0])], 4)
    np.testing.assert_array_equal(train, [[True, True, False, False], [False, False, True, False]])
    np.testing.assert_array_equal(val, [[False, False, True, False], [True, False, False, False]])


@pytest.mark.parametrize(
    ("splits", "n_samples", "match"),
    [
        ([], 4, "splits is empty"),
        ([([0], [1])], 0, "n_samples must be >= 1, got 0"),
        ([([0], [1], [2])], 4, "split 0 must be a .train_idx, val_idx. pair"),
        ([7], 4, "split 0 must be a .train_idx, val_idx. pair"),
        ([([0], [1]), ([0], [4])], 4, r"split 1: validation index 4 is out of range for 4 samples \(0..3\)"),
        ([([-1], [1])], 4, "split 0: train index -1 is out of range"),
        ([([0.5], [1])], 4, "split 0: train indices must be a 1-D integer array"),
        ([([0, 1], [1, 2])], 4, "split 0 puts 1 samples in both train and validation"),
    ],
)
def test_fold_masks_rejects(splits, n_samples, match):
    with pytest.raises(InvalidInputError, match=match):
        fold_masks(splits, n_samples)


def test_doctests():
    assert doctest.testmod(folds).failed == 0
