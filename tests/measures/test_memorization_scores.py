"""Tests for rotelab.measures.memorization: hand cases, slow references, every error branch."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from rotelab.errors import InvalidInputError
from rotelab.measures import memorization
from rotelab.measures.memorization import (
    MemorizationEstimate,
    check_memorization_inputs,
    influence_scores,
    memorization_scores,
    n_in_out,
    split_half_correlation,
    top_influence_pairs,
)

FIX = "train more models or use a subset fraction nearer 0.5"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def random_runs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """12 models, 30 train and 7 test examples; one train example always in, one always out."""
    rng = np.random.default_rng(1234)
    mask = rng.random((12, 30)) < 0.5
    mask[:, 0] = True
    mask[:, 1] = False
    correct = rng.random((12, 30)) < 0.6
    correct_test = rng.random((12, 7)) < 0.6
    return correct, mask, correct_test


def planted(seed: int, *, n_models: int = 64, n_samples: int = 300, n_planted: int = 15):
    """Random subsets; the first ``n_planted`` examples are learned only when trained on."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_models, n_samples)) < 0.5
    p_in = rng.uniform(0.3, 1.0, n_samples)
    p_out = p_in.copy()
    p_in[:n_planted], p_out[:n_planted] = 0.95, 0.05
    correct = rng.random((n_models, n_samples)) < np.where(mask, p_in, p_out)
    return correct, mask


# ----------------------------------------------------------------------------- references


def slow_memorization(correct, mask):
    n = correct.shape[1]
    out = {k: np.full(n, np.nan) for k in ("score", "stderr", "p_in", "p_out")}
    out["n_in"], out["n_out"] = np.zeros(n, int), np.zeros(n, int)
    for i in range(n):
        ins = [bool(correct[m, i]) for m in range(len(correct)) if mask[m, i]]
        outs = [bool(correct[m, i]) for m in range(len(correct)) if not mask[m, i]]
        out["n_in"][i], out["n_out"][i] = len(ins), len(outs)
        if ins:
            out["p_in"][i] = sum(ins) / len(ins)
        if outs:
            out["p_out"][i] = sum(outs) / len(outs)
        if ins and outs:
            a, b = out["p_in"][i], out["p_out"][i]
            out["score"][i] = a - b
            # Agresti & Caffo (2000): a success and a failure added to each group
            at, bt = (sum(ins) + 1) / (len(ins) + 2), (sum(outs) + 1) / (len(outs) + 2)
            out["stderr"][i] = np.sqrt(at * (1 - at) / (len(ins) + 2) + bt * (1 - bt) / (len(outs) + 2))
    return out


def slow_influence(correct_test, mask):
    n_models, n_train = mask.shape
    infl = np.full((n_train, correct_test.shape[1]), np.nan)
    for i in range(n_train):
        ins = [m for m in range(n_models) if mask[m, i]]
        outs = [m for m in range(n_models) if not mask[m, i]]
        if ins and outs:
            for j in range(correct_test.shape[1]):
                infl[i, j] = np.mean([correct_test[m, j] for m in ins]) - np.mean(
                    [correct_test[m, j] for m in outs]
                )
    return infl


# ----------------------------------------------------------------------------- memorization_scores


def test_memorization_hand_computed():
    correct = [[1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 1]]
    mask = [[1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1], [0, 0, 1, 1]]
    est = memorization_scores(correct, mask)
    assert isinstance(est, MemorizationEstimate)
    # ex0: in {0,1} -> 2/2, out {2,3} -> 1/2; ex1: in {1,2} -> 2/2, out {0,3} -> 0/2;
    # ex2: in {0,2,3} -> 2/3, out {1} -> 0/1; ex3: every model trained on it -> NaN
    np.testing.assert_allclose(est.p_in, [1.0, 1.0, 2 / 3, 1.0])
    np.testing.assert_allclose(est.p_out, [0.5, 0.0, 0.0, np.nan])
    np.testing.assert_allclose(est.score, [0.5, 1.0, 2 / 3, np.nan])
    # Agresti–Caffo: ex0 (3/4, 2/4), ex1 (3/4, 1/4), ex2 (3/5, 1/3); never 0 at a score of 1
    np.testing.assert_allclose(est.stderr, [np.sqrt(3 / 64 + 1 / 16), np.sqrt(3 / 64 + 3 / 64),
                                            np.sqrt(6 / 125 + 2 / 27), np.nan])
    assert est.stderr[1] > 0.25
    np.testing.assert_array_equal(est.n_in, [2, 2, 3, 4])
    np.testing.assert_array_equal(est.n_out, [2, 2, 1, 0])


def test_memorization_matches_slow_reference(random_runs):
    correct, mask, _ = random_runs
    est = memorization_scores(correct.astype(int), mask.astype(float))  # 0/1 numbers accepted
    ref = slow_memorization(correct, mask)
    for field in ("score", "stderr", "p_in", "p_out", "n_in", "n_out"):
        np.testing.assert_allclose(getattr(est, field), ref[field], err_msg=field)
    assert np.isnan(est.score[:2]).all() and np.isfinite(est.score[2:]).all()


def test_memorization_ranks_planted_examples_on_top():
    correct, mask = planted(7)
    score = memorization_scores(correct, mask).score
    assert set(np.argsort(-score)[:15]) == set(range(15))


def test_n_in_out():
    n_in, n_out = n_in_out(np.array([[1, 0, 1], [1, 1, 0]], dtype=bool))
    np.testing.assert_array_equal(n_in, [2, 1, 1])
    np.testing.assert_array_equal(n_out, [0, 1, 1])
    assert n_in.dtype == np.int64


# ----------------------------------------------------------------------------- influence


def test_influence_hand_computed():
    correct_test = [[1, 0], [1, 1], [0, 1], [0, 0]]
    mask = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0]]
    infl = influence_scores(correct_test, mask)
    # train 0: in {0,1}, out {2,3}; train 1: in {1,2,3}, out {0}; train 2: never in -> NaN
    expected = [[1.0 - 0.0, 0.5 - 0.5], [1 / 3 - 1.0, 2 / 3 - 0.0], [np.nan, np.nan]]
    np.testing.assert_allclose(infl, expected)
    assert infl.dtype == np.float64


def test_influence_matches_slow_reference(random_runs):
    _, mask, correct_test = random_runs
    infl = influence_scores(correct_test, mask)
    assert infl.shape == (30, 7)
    np.testing.assert_allclose(infl, slow_influence(correct_test, mask))


def test_top_influence_pairs_hand_computed():
    infl = np.array([[0.1, np.nan, 0.5], [0.5, -0.2, 0.3]])
    assert top_influence_pairs(infl, k=3) == [(0, 2, 0.5), (1, 0, 0.5), (1, 2, 0.3)]
    assert len(top_influence_pairs(infl, k=10)) == 5  # NaN skipped
    assert top_influence_pairs(np.full((2, 2), np.nan)) == []


def test_top_influence_pairs_with_many_ties():
    rng = np.random.default_rng(21)
    infl = rng.integers(0, 3, (6, 5)).astype(float)
    infl[0, 0] = np.nan
    ref = sorted(
        ((i, j, infl[i, j]) for i in range(6) for j in range(5) if not np.isnan(infl[i, j])),
        key=lambda t: (-t[2], t[0], t[1]),
    )
    for k in (1, 7, 29, 40):
        assert top_influence_pairs(infl, k=k) == [(i, j, float(v)) for i, j, v in ref[:k]]


def test_top_influence_pairs_matches_sorting(random_runs):
    _, mask, correct_test = random_runs
    infl = influence_scores(correct_test, mask)
    pairs = top_influence_pairs(infl, k=20)
    ref = sorted(
        ((i, j, infl[i, j]) for i in range(30) for j in range(7) if not np.isnan(infl[i, j])),
        key=lambda t: (-t[2], t[0], t[1]),
    )[:20]
    assert pairs == [(i, j, float(v)) for i, j, v in ref]


# ----------------------------------------------------------------------------- split-half


@pytest.mark.parametrize("method, reference", [("pearson", pearsonr), ("spearman", spearmanr)])
def test_split_half_matches_reference(random_runs, method, reference):
    correct, mask, _ = random_runs
    got = split_half_correlation(correct, mask, rng=np.random.default_rng(5), method=method)
    perm = np.random.default_rng(5).permutation(12)
    a, b = perm[:6], perm[6:]
    sa = slow_memorization(correct[a], mask[a])["score"]
    sb = slow_memorization(correct[b], mask[b])["score"]
    ok = np.isfinite(sa) & np.isfinite(sb)
    np.testing.assert_allclose(got, reference(sa[ok], sb[ok])[0])


def test_split_half_hand_computed_and_constant():
    # Rows of pattern P and Q, placed so each half of the permutation holds one P and one Q:
    # both halves score [1, 1, 0, -1] (ex0: 1-0, ex1: 1-0, ex2: 1-1, ex3: 0-1) -> r = 1.
    p_correct, p_mask = [1, 0, 1, 0], [1, 0, 1, 1]
    q_correct, q_mask = [0, 1, 1, 1], [0, 1, 0, 0]
    perm = np.random.default_rng(0).permutation(4)
    correct, mask = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    correct[perm[[0, 2]]], mask[perm[[0, 2]]] = p_correct, p_mask
    correct[perm[[1, 3]]], mask[perm[[1, 3]]] = q_correct, q_mask
    assert split_half_correlation(correct, mask, rng=np.random.default_rng(0)) == pytest.approx(1.0)
    # always correct -> every score is 0 -> correlation undefined
    flat = np.ones((4, 4), dtype=bool)
    assert np.isnan(split_half_correlation(flat, mask, rng=np.random.default_rng(0)))


def test_split_half_is_high_for_planted_and_low_for_noise():
    correct, mask = planted(11)
    assert split_half_correlation(correct, mask, rng=np.random.default_rng(0)) > 0.4
    noise_rng = np.random.default_rng(12)
    noise = noise_rng.random((64, 300)) < 0.7
    r = split_half_correlation(noise, mask, rng=np.random.default_rng(0), method="spearman")
    assert abs(r) < 0.25


# ----------------------------------------------------------------------------- errors


def test_error_correct_not_2d():
    with pytest.raises(InvalidInputError, match=r"correct must have shape \(n_models, n_samples\)"):
        memorization_scores([1, 0, 1], [1, 0, 1])


def test_error_correct_not_bool_like():
    with pytest.raises(InvalidInputError, match="correct must be bool"):
        memorization_scores([[0.5, 1.0], [0.0, 1.0]], [[1, 0], [0, 1]])
    with pytest.raises(InvalidInputError, match="correct must be bool"):
        memorization_scores([["a", "b"], ["c", "d"]], [[1, 0], [0, 1]])


def test_error_mask_not_bool_like():
    with pytest.raises(InvalidInputError, match="train_mask must be bool"):
        memorization_scores([[1, 0], [0, 1]], [[2, 0], [0, 1]])
    with pytest.raises(InvalidInputError, match="train_mask must be bool"):
        memorization_scores([[1, 0], [0, 1]], [[np.nan, 0.0], [0.0, 1.0]])


def test_error_shapes_differ():
    with pytest.raises(InvalidInputError, match=r"same shape .* got \(2, 2\) and \(2, 3\)"):
        memorization_scores([[1, 0], [0, 1]], [[1, 0, 1], [0, 1, 0]])


def test_error_model_counts_differ_for_influence():
    with pytest.raises(InvalidInputError, match="inconsistent numbers of models: correct has 3, train_mask has 2"):
        influence_scores(np.ones((3, 4)), [[1, 0], [0, 1]])


def test_error_no_example_in_and_out():
    with pytest.raises(InvalidInputError, match=FIX):
        memorization_scores([[1, 0], [0, 1]], [[1, 0], [1, 0]])
    with pytest.raises(InvalidInputError, match=FIX):
        check_memorization_inputs(np.ones((3, 2)), np.ones((3, 5)), same_samples=False)


def test_error_top_influence_pairs():
    with pytest.raises(InvalidInputError, match=r"influence must have shape \(n_train, n_test\)"):
        top_influence_pairs(np.zeros(3))
    with pytest.raises(InvalidInputError, match="k must be >= 1"):
        top_influence_pairs(np.zeros((2, 2)), k=0)


def test_error_split_half(random_runs):
    correct, mask, _ = random_runs
    with pytest.raises(InvalidInputError, match="rng must be a numpy.random.Generator"):
        split_half_correlation(correct, mask, rng=0)
    with pytest.raises(InvalidInputError, match="unknown correlation method 'kendall'"):
        split_half_correlation(correct, mask, rng=np.random.default_rng(0), method="kendall")
    with pytest.raises(InvalidInputError, match="at least 4 models, got 3"):
        split_half_correlation(correct[:3], mask[:3], rng=np.random.default_rng(0))
    # each half holds one model that trained on examples 0 and 1 and one that did not;
    # the other examples are never trained on -> only 2 finite in both halves
    perm = np.random.default_rng(0).permutation(4)
    few = np.zeros((4, 5), dtype=bool)
    few[perm[[0, 2]], :2] = True
    with pytest.raises(InvalidInputError, match=rf"only 2 examples .*\(need 3\); {FIX}"):
        split_half_correlation(np.ones((4, 5)), few, rng=np.random.default_rng(0))


def test_doctests():
    assert doctest.testmod(memorization, raise_on_error=True).attempted > 0
