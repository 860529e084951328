"""Tests for rotelab.measures.ledger: slow loops as references, hand cases, every error branch."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.stats import norm

from rotelab.errors import InvalidInputError
from rotelab.measures import ledger as ledger_module
from rotelab.measures.ledger import CATEGORIES, Ledger, example_ledger, paired_score_difference

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def cells() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """16 models, 60 examples, three cells sharing the subsets; examples 0-9 are memorized
    (predicted only when trained on) in every cell, 10-19 by the baseline only, 20-29 only
    under dropout, 30-34 by baseline and augment while dropout fits them not at all (a wrong
    label under a noise-robust technique); the rest are learned (predicted either way)."""
    rng = np.random.default_rng(31)
    mask = rng.random((16, 60)) < 0.5
    mask[:, 59] = True  # no out model: NaN score
    learned = rng.random((16, 60)) < 0.9
    base, aug, drop = learned.copy(), learned.copy(), learned.copy()
    for arr, cols in ((base, range(0, 20)), (aug, range(0, 10)), (drop, list(range(0, 10)) + list(range(20, 30)))):
        cols = list(cols)
        arr[:, cols] = mask[:, cols]
    base[:, 30:35], aug[:, 30:35], drop[:, 30:35] = mask[:, 30:35], mask[:, 30:35], False
    return {"baseline": base, "augment": aug, "dropout": drop}, mask


# ----------------------------------------------------------------------------- slow references


def slow_category(memorized_by_cell, disagrees, baseline):
    at_base = memorized_by_cell[baseline]
    if at_base and disagrees:
        return "likely_mislabeled"
    if at_base and all(memorized_by_cell.values()):
        return "always_memorized"
    if at_base:
        return "regularized_away"
    if any(memorized_by_cell.values()):
        return "technique_only"
    return "never_memorized"


def slow_ledger(correct, mask, *, baseline, threshold, out_disagrees=None):
    n_models, n = mask.shape
    score, p_out = {}, {}
    for cell, c in correct.items():
        score[cell], p_out[cell] = np.full(n, np.nan), np.full(n, np.nan)
        for i in range(n):
            ins = [c[m, i] for m in range(n_models) if mask[m, i]]
            outs = [c[m, i] for m in range(n_models) if not mask[m, i]]
            if outs:
                p_out[cell][i] = np.mean(outs)
            if ins and outs:
                score[cell][i] = np.mean(ins) - np.mean(outs)
    categories = []
    for i in range(n):
        memorized = {cell: bool(np.isfinite(score[cell][i]) and score[cell][i] >= threshold) for cell in correct}
        if out_disagrees is None:
            disagrees = all(np.isfinite(p_out[c][i]) and p_out[c][i] < 0.5 for c in correct)
        else:
            disagrees = bool(out_disagrees[i])
        categories.append(slow_category(memorized, disagrees, baseline))
    return score, p_out, categories


def slow_difference(a, b, mask, confidence):
    n_models, n = mask.shape
    out = {k: np.full(n, np.nan) for k in ("difference", "stderr")}
    for i in range(n):
        d_in = [int(a[m, i]) - int(b[m, i]) for m in range(n_models) if mask[m, i]]
        d_out = [int(a[m, i]) - int(b[m, i]) for m in range(n_models) if not mask[m, i]]
        if d_in and d_out:
            out["difference"][i] = np.mean(d_in) - np.mean(d_out)
        if len(d_in) > 1 and len(d_out) > 1:
            out["stderr"][i] = np.sqrt(np.var(d_in, ddof=1) / len(d_in) + np.var(d_out, ddof=1) / len(d_out))
    q = norm.ppf(0.5 + confidence / 2)
    return out["difference"], out["stderr"], out["difference"] - q * out["stderr"], out["difference"] + q * out["stderr"]


# ----------------------------------------------------------------------------- ledger


@pytest.mark.parametrize("threshold", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("baseline", [None, "augment"])
def test_ledger_matches_slow_reference(cells, threshold, baseline):
    correct, mask = cells
    led = example_ledger(correct, mask, baseline=baseline, threshold=threshold)
    base = baseline or "baseline"
    score, p_out, categories = slow_ledger(correct, mask, baseline=base, threshold=threshold)
    assert isinstance(led, Ledger) and led.cells == ("baseline", "augment", "dropout") and led.baseline == base
    for k, cell in enumerate(led.cells):
        np.testing.assert_allclose(led.score[k], score[cell])
        np.testing.assert_allclose(led.p_out[k], p_out[cell])
    assert led.category.tolist() == categories
    assert sum(led.counts().values()) == 60 and list(led.counts()) == list(CATEGORIES)


def test_ledger_categories_of_the_planted_examples(cells):
    correct, mask = cells
    led = example_ledger(correct, mask)
    assert set(led.category[0:10]) == {"likely_mislabeled"}  # memorized everywhere, out models never right
    assert set(led.category[10:20]) == {"regularized_away"}
    assert set(led.category[20:30]) == {"technique_only"}
    assert set(led.category[30:35]) == {"likely_mislabeled"}  # dropout stops fitting, never predicts it
    assert led.category[59] == "never_memorized"  # NaN scores count as not memorized
    assert np.isnan(led.score[:, 59]).all() and np.isnan(led.vulnerability).all()


def test_ledger_with_given_disagreement_and_vulnerability(cells):
    correct, mask = cells
    disagrees = np.zeros(60, dtype=bool)
    vul = {"dropout": np.linspace(0, 1, 60)}
    led = example_ledger(correct, mask, out_disagrees=disagrees, vulnerability=vul)
    assert set(led.category[0:10]) == {"always_memorized"}  # memorized everywhere, label agreed with
    _, _, categories = slow_ledger(correct, mask, baseline="baseline", threshold=0.5, out_disagrees=disagrees)
    assert led.category.tolist() == categories
    np.testing.assert_array_equal(led.vulnerability[2], vul["dropout"])
    assert np.isnan(led.vulnerability[:2]).all()


def test_ledger_errors(cells):
    correct, mask = cells
    cases = [
        (dict(correct=[mask]), "correct must be a non-empty mapping of cell name"),
        (dict(correct={}), r"correct must be a non-empty mapping .* \(empty\)"),
        (dict(correct={"baseline": correct["baseline"][:, :5]}), "correct and train_mask must have the same shape"),
        (dict(baseline="l2"), "baseline 'l2' is not one of the cells: baseline, augment, dropout"),
        (dict(threshold=0.0), r"threshold must be in \(0.0, 1.0\], got 0.0"),
        (dict(vulnerability=[1.0]), "vulnerability must be a mapping of cell name"),
        (dict(vulnerability={"l2": np.zeros(60)}), r"vulnerability has cells \['l2'\] that are not in correct"),
        (dict(vulnerability={"dropout": np.zeros(5)}), r"vulnerability\['dropout'\] must have shape \(60,\)"),
        (dict(out_disagrees=np.zeros(60)), "out_disagrees must be a bool array of shape \\(60,\\)"),
        (dict(out_disagrees=np.zeros(5, dtype=bool)), "out_disagrees must be a bool array"),
    ]
    for change, message in cases:
        kwargs = dict(correct=correct, train_mask=mask) | change
        with pytest.raises(InvalidInputError, match=message):
            example_ledger(**kwargs)


# ----------------------------------------------------------------------------- paired difference


def test_paired_difference_hand_computed():
    mask = np.array([[1], [1], [0], [0]], dtype=bool)
    a = np.array([[1], [1], [0], [1]], dtype=bool)
    b = np.array([[1], [0], [0], [1]], dtype=bool)
    # d = 0, 1 (in) and 0, 0 (out): difference 0.5; var_in 0.5 / 2, var_out 0
    got = paired_score_difference(a, b, mask, confidence=0.95)
    assert got.difference[0] == pytest.approx(0.5)
    assert got.stderr[0] == pytest.approx(0.5)
    assert got.low[0] == pytest.approx(0.5 - 1.959963985 * 0.5)
    assert got.high[0] == pytest.approx(0.5 + 1.959963985 * 0.5) and got.confidence == 0.95


@pytest.mark.parametrize("confidence", [0.5, 0.95])
def test_paired_difference_matches_slow_reference(cells, confidence):
    correct, mask = cells
    got = paired_score_difference(correct["baseline"], correct["dropout"], mask, confidence=confidence)
    want = slow_difference(correct["baseline"], correct["dropout"], mask, confidence)
    for field, expected in zip(("difference", "stderr", "low", "high"), want):
        np.testing.assert_allclose(getattr(got, field), expected, err_msg=field)
    led = example_ledger(correct, mask)
    np.testing.assert_allclose(got.difference, led.score[0] - led.score[2])  # the scores' difference


def test_paired_interval_is_narrower_than_unpaired_when_cells_agree():
    rng = np.random.default_rng(2)
    mask = rng.random((64, 200)) < 0.5
    shared = rng.random((64, 200)) < 0.6  # what both cells get right or wrong on the same subset
    a = shared | (mask & (rng.random((64, 200)) < 0.5))
    b = shared.copy()
    got = paired_score_difference(a, b, mask)
    led = example_ledger({"a": a, "b": b}, mask)
    unpaired = np.sqrt(led.stderr[0] ** 2 + led.stderr[1] ** 2)
    assert np.nanmean(got.stderr) < 0.8 * np.nanmean(unpaired)
    covered = (got.low <= 0.5 * (1 - 0.6)) & (0.5 * (1 - 0.6) <= got.high)  # the true difference 0.2
    assert covered.mean() > 0.85  # a Wald interval: somewhat below 95% at n_in ~ 32, p = 0.2


def test_paired_difference_errors(cells):
    correct, mask = cells
    with pytest.raises(InvalidInputError, match="correct and train_mask must have the same shape"):
        paired_score_difference(correct["baseline"], correct["dropout"][:, :5], mask)
    with pytest.raises(InvalidInputError, match=r"confidence must be in \(0.0, 1.0\), got 1.0"):
        paired_score_difference(correct["baseline"], correct["dropout"], mask, confidence=1.0)
    with pytest.raises(InvalidInputError, match="correct must be bool"):
        paired_score_difference(correct["baseline"] * 2, correct["dropout"], mask)


def test_doctests():
    assert doctest.testmod(ledger_module, raise_on_error=True).attempted > 0
