"""Tests for rotelab.measures.membership: hand cases, slow loops, sklearn as the ROC reference."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

from rotelab.errors import InvalidInputError
from rotelab.measures import membership
from rotelab.measures.membership import (
    AttackROC,
    attack_roc,
    example_vulnerability,
    lira_scores,
    logit_scaled_confidence,
    loss_attack_scores,
)

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def margins() -> tuple[np.ndarray, np.ndarray]:
    """10 models x 40 examples; example 0 held by every model, example 1 by exactly one."""
    rng = np.random.default_rng(2024)
    mask = rng.random((10, 40)) < 0.5
    mask[:, 0] = True
    mask[:, 1] = False
    mask[3, 1] = True
    phi = rng.normal(0.0, 1.0, (10, 40)) + rng.normal(0.0, 2.0, 40) + 0.8 * mask
    return phi, mask


def simulate(seed: int, *, n_models: int = 64, n_samples: int = 400, n_vulnerable: int = 40):
    """Margins with per-example difficulty; members gain a little, vulnerable ones a lot."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_models, n_samples)) < 0.5
    difficulty = rng.normal(0.0, 3.0, n_samples)
    gain = np.full(n_samples, 0.3)
    gain[:n_vulnerable] = 4.0
    phi = difficulty + rng.normal(0.0, 1.0, (n_models, n_samples)) + gain * mask
    return phi, mask


# ----------------------------------------------------------------------------- references


def slow_lira(phi, mask, *, variant, fixed):
    """Explicit loop: each target, its leave-one-out shadows, one Gaussian per side."""
    n_models, n_samples = phi.shape
    out = np.full(phi.shape, np.nan)
    for t in range(n_models):
        shadows = [s for s in range(n_models) if s != t]
        groups = {
            side: [[phi[s, i] for s in shadows if mask[s, i] == (side == "in")] for i in range(n_samples)]
            for side in ("in", "out")
        }
        pooled = {}
        for side, per_example in groups.items():
            res = [v - np.mean(vals) for vals in per_example if vals for v in vals]
            dof = sum(len(vals) - 1 for vals in per_example if vals)
            pooled[side] = sum(r * r for r in res) / dof if dof > 0 else np.nan
        for i in range(n_samples):
            fits = {}
            for side, per_example in groups.items():
                vals = per_example[i]
                if fixed and len(vals) >= 1:
                    fits[side] = (np.mean(vals), np.sqrt(pooled[side]))
                elif not fixed and len(vals) >= 2:
                    fits[side] = (np.mean(vals), np.std(vals, ddof=1))
            x = phi[t, i]
            if variant == "offline" and "out" in fits:
                out[t, i] = norm.logcdf(x, *fits["out"])
            elif variant == "online" and len(fits) == 2:
                out[t, i] = norm.logpdf(x, *fits["in"]) - norm.logpdf(x, *fits["out"])
    return out


def slow_tpr_at(scores, labels, bound):
    """Largest TPR over all thresholds (score >= tau) whose FPR does not exceed ``bound``."""
    best = 0.0
    for tau in np.unique(scores):
        pred = scores >= tau
        if pred[~labels].mean() <= bound:
            best = max(best, pred[labels].mean())
    return best


def slow_vulnerability(scores, mask, fpr):
    neg = [s for s, m in zip(scores.ravel(), mask.ravel()) if not m and np.isfinite(s)]
    ok = [tau for tau in neg if np.mean([v > tau for v in neg]) <= fpr]
    tau = min(ok) if ok else -np.inf
    result = np.full(scores.shape[1], np.nan)
    for i in range(scores.shape[1]):
        held = [scores[m, i] for m in range(scores.shape[0]) if mask[m, i] and np.isfinite(scores[m, i])]
        if held:
            result[i] = np.mean([v > tau for v in held])
    return result


# ----------------------------------------------------------------------------- loss attack


def test_loss_attack_hand_computed():
    np.testing.assert_array_equal(loss_attack_scores([[0.1, 2.0], [np.inf, 0.0]]), [[-0.1, -2.0], [-np.inf, 0.0]])


def test_loss_attack_errors():
    with pytest.raises(InvalidInputError, match=r"loss must have shape \(n_models, n_samples\)"):
        loss_attack_scores([0.1, 0.2])
    with pytest.raises(InvalidInputError, match="loss contains 1 NaN values"):
        loss_attack_scores([[0.1, np.nan]])
    with pytest.raises(InvalidInputError, match="loss must be numeric"):
        loss_attack_scores([["a", "b"]])


# ----------------------------------------------------------------------------- logit-scaled confidence


def test_logit_scaled_confidence_hand_computed():
    logits = [[[2.0, 0.0, 0.0], [1000.0, 0.0, -1000.0]]]
    phi = logit_scaled_confidence(logits, [0, 0])
    np.testing.assert_allclose(phi, [[2.0 - np.log(2.0), 1000.0]])
    phi = logit_scaled_confidence(logits, [1, 1])  # 0 - logsumexp(2, 0); 0 - 1000 (stable)
    np.testing.assert_allclose(phi, [[-np.log(np.exp(2.0) + 1.0), -1000.0]])


def test_logit_scaled_confidence_matches_probabilities():
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 3.0, (4, 20, 5))
    labels = rng.integers(0, 5, 20)
    p = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    p_y = np.take_along_axis(p, labels[None, :, None], axis=2)[..., 0]
    np.testing.assert_allclose(logit_scaled_confidence(logits, labels), np.log(p_y) - np.log1p(-p_y), rtol=1e-8)


def test_logit_scaled_confidence_errors():
    with pytest.raises(InvalidInputError, match=r"logits must have shape \(n_models, n_samples, n_classes\)"):
        logit_scaled_confidence(np.zeros((2, 3)), [0, 1])
    with pytest.raises(InvalidInputError, match="n_classes >= 2"):
        logit_scaled_confidence(np.zeros((2, 3, 1)), [0, 0, 0])
    with pytest.raises(InvalidInputError, match="logits contain NaN or infinite"):
        logit_scaled_confidence(np.full((1, 1, 2), np.nan), [0])
    with pytest.raises(InvalidInputError, match="out of range for 2 classes"):
        logit_scaled_confidence(np.zeros((1, 2, 2)), [0, 2])
    with pytest.raises(InvalidInputError, match="inconsistent numbers of samples"):
        logit_scaled_confidence(np.zeros((1, 2, 2)), [0])


# ----------------------------------------------------------------------------- LiRA


def test_lira_online_fixed_variance_hand_computed():
    phi = [[1.0, 0.0], [2.0, 1.0], [3.0, 3.0], [4.0, 5.0]]
    mask = [[1, 0], [1, 1], [0, 1], [0, 0]]
    # target 0: ex0 in {2}, out {3, 4}; ex1 in {1, 3}, out {5}. Pooled residual variances:
    # in (0 + 2) / (0 + 1) = 2, out (0.5 + 0) / (1 + 0) = 0.5.
    # ex0: logN(1; 2, 2) - logN(1; 3.5, 0.5) = -log 2 - 1/4 + 25/4 = 6 - log 2
    # ex1: logN(0; 2, 2) - logN(0; 5, 0.5)   = -log 2 - 1   + 25   = 24 - log 2
    scores = lira_scores(phi, mask, fixed_variance=True)
    np.testing.assert_allclose(scores[0], [6 - np.log(2), 24 - np.log(2)])


def test_lira_offline_per_example_hand_computed():
    phi = [[5.0], [1.0], [2.0], [3.0]]
    mask = [[1], [0], [0], [0]]
    # out shadows: t0 {1,2,3} mean 2 var 1; t1 {2,3} 2.5, 0.5; t2 {1,3} 2, 2; t3 {1,2} 1.5, 0.5
    expected = norm.logcdf([3.0, -1.5 / np.sqrt(0.5), 0.0, 1.5 / np.sqrt(0.5)])
    scores = lira_scores(phi, mask, variant="offline", fixed_variance=False)
    np.testing.assert_allclose(scores[:, 0], expected)


@pytest.mark.parametrize("variant", ["online", "offline"])
@pytest.mark.parametrize("fixed", [True, False])
def test_lira_matches_leave_one_out_loop(margins, variant, fixed):
    phi, mask = margins
    got = lira_scores(phi, mask, variant=variant, fixed_variance=fixed)
    np.testing.assert_allclose(got, slow_lira(phi, mask, variant=variant, fixed=fixed), rtol=1e-7, atol=1e-9)


def test_lira_nan_where_shadows_missing(margins):
    phi, mask = margins
    online = lira_scores(phi, mask, fixed_variance=True)
    assert np.isnan(online[:, 0]).all()  # every model held example 0: no out shadows
    assert np.isnan(online[3, 1]) and np.isfinite(np.delete(online[:, 1], 3)).all()  # one in shadow
    assert np.isnan(lira_scores(phi, mask, fixed_variance=False)[:, 1]).all()  # < 2 in shadows
    offline = lira_scores(phi, mask, variant="offline", fixed_variance=False)
    n_out_shadows = (~mask).sum(axis=0) - ~mask  # leave-one-out
    np.testing.assert_array_equal(np.isfinite(offline), n_out_shadows >= 2)
    assert np.isnan(offline[:, 0]).all() and (n_out_shadows < 2).any()


def test_lira_automatic_variance_choice(margins):
    phi, mask = margins  # about 4 shadows per side: fixed
    np.testing.assert_array_equal(lira_scores(phi, mask), lira_scores(phi, mask, fixed_variance=True))
    rng = np.random.default_rng(8)
    big_mask = np.argsort(rng.random((130, 5)), axis=0) < 65  # 65 in, 65 out -> 64 or 65 shadows a side
    big_phi = rng.normal(size=(130, 5)) + big_mask
    for variant in ("online", "offline"):
        np.testing.assert_array_equal(
            lira_scores(big_phi, big_mask, variant=variant),
            lira_scores(big_phi, big_mask, variant=variant, fixed_variance=False),
        )
    small = lira_scores(big_phi[:100], big_mask[:100])
    np.testing.assert_array_equal(small, lira_scores(big_phi[:100], big_mask[:100], fixed_variance=True))


def test_lira_constant_margins_stay_finite():
    mask = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1]], dtype=bool)
    scores = lira_scores(np.ones((5, 2)), mask, fixed_variance=True)  # variance floor, no 0/0
    assert np.isfinite(scores).all()


def test_lira_errors(margins):
    phi, mask = margins
    with pytest.raises(InvalidInputError, match=r"margin and train_mask must have the same shape"):
        lira_scores(phi[:, :5], mask)
    bad = phi.copy()
    bad[2, 3] = np.nan
    with pytest.raises(InvalidInputError, match="margin contains 1 NaN values; every model needs a value"):
        lira_scores(bad, mask)
    bad[2, 3] = np.inf
    with pytest.raises(InvalidInputError, match="margin contains infinite values"):
        lira_scores(bad, mask)
    with pytest.raises(InvalidInputError, match="train_mask must be bool"):
        lira_scores(phi, mask * 2.5)
    with pytest.raises(InvalidInputError, match="unknown LiRA variant 'global'"):
        lira_scores(phi, mask, variant="global")
    with pytest.raises(InvalidInputError, match="fixed_variance must be True, False or None"):
        lira_scores(phi, mask, fixed_variance="auto")
    with pytest.raises(InvalidInputError, match="at least 2 models"):
        lira_scores(phi[:1], mask[:1])


# ----------------------------------------------------------------------------- attack ROC


def test_attack_roc_hand_computed():
    roc = attack_roc([[0.9, 0.1], [0.8, 0.7]], [[1, 0], [0, 1]])
    # members 0.9, 0.7; non-members 0.1, 0.8; pairs ranked right: 3 of 4
    assert isinstance(roc, AttackROC)
    assert roc.auc == pytest.approx(0.75)
    assert (roc.n_members, roc.n_nonmembers) == (2, 2)
    assert roc.tpr_at_0_1pct == roc.tpr_at_1pct == roc.tpr_at(0.0) == 0.5
    assert roc.tpr_at(0.5) == 1.0 and roc.tpr_at(0.49) == 0.5


def test_attack_roc_matches_sklearn():
    rng = np.random.default_rng(4)
    mask = rng.random((20, 150)) < 0.5
    scores = rng.normal(size=(20, 150)) + 0.7 * mask
    scores[rng.random((20, 150)) < 0.05] = np.nan  # dropped
    scores[0, 0] = -np.inf  # dropped
    roc = attack_roc(scores, mask)
    keep = np.isfinite(scores)
    s, y = scores[keep], mask[keep]
    fpr, tpr, _ = roc_curve(y, s)
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)
    assert roc.auc == pytest.approx(roc_auc_score(y, s))
    assert roc.n_members + roc.n_nonmembers == keep.sum()
    assert roc.tpr_at_1pct == pytest.approx(slow_tpr_at(s, y, 0.01))
    assert roc.tpr_at_0_1pct == pytest.approx(slow_tpr_at(s, y, 0.001))
    for bound in (0.0, 0.05, 0.3, 1.0):
        assert roc.tpr_at(bound) == pytest.approx(slow_tpr_at(s, y, bound))


def test_attack_roc_downsampled():
    rng = np.random.default_rng(5)
    mask = rng.random((10, 100)) < 0.5
    roc = attack_roc(rng.normal(size=(10, 100)) + mask, mask)
    fpr, tpr = roc.downsampled(50)
    assert fpr.shape == tpr.shape == (50,)
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert fpr[1] == pytest.approx(1 / roc.n_nonmembers)
    np.testing.assert_allclose(np.diff(np.log(fpr[1:])), np.log(fpr[2] / fpr[1]))  # log-spaced
    np.testing.assert_array_equal(tpr, [roc.tpr_at(b) for b in fpr])
    assert len(roc.downsampled()[0]) == 200


def test_attack_roc_errors():
    with pytest.raises(InvalidInputError, match="needs members and non-members .* got 2 and 0"):
        attack_roc([[0.1, 0.2]], [[1, 1]])
    with pytest.raises(InvalidInputError, match="got 0 and 0"):
        attack_roc([[np.nan, np.nan]], [[1, 0]])
    with pytest.raises(InvalidInputError, match=r"scores must have shape \(n_models, n_samples\)"):
        attack_roc([0.1, 0.2], [[1, 0]])
    with pytest.raises(InvalidInputError, match="scores and train_mask must have the same shape"):
        attack_roc([[0.1, 0.2]], [[1, 0, 1]])
    roc = attack_roc([[0.9, 0.1]], [[1, 0]])
    with pytest.raises(InvalidInputError, match=r"fpr_bound must be in \[0.0, 1.0\], got 1.5"):
        roc.tpr_at(1.5)
    with pytest.raises(InvalidInputError, match="n_points must be >= 2"):
        roc.downsampled(1)


# ----------------------------------------------------------------------------- vulnerability


def test_example_vulnerability_hand_computed():
    scores = [[0.9, 0.1, 0.15, 0.0], [0.2, 0.3, 0.4, 0.05]]
    mask = [[1, 0, 1, 0], [0, 1, 0, 0]]
    # non-members 0.1, 0.2, 0.4, 0.0, 0.05. fpr 0.2 allows 1 above: threshold 0.2.
    np.testing.assert_array_equal(example_vulnerability(scores, mask, fpr=0.2), [1.0, 1.0, 0.0, np.nan])
    # fpr 0 allows none above: threshold 0.4
    np.testing.assert_array_equal(example_vulnerability(scores, mask, fpr=0.0), [1.0, 0.0, 0.0, np.nan])
    # fpr 1: every member caught
    np.testing.assert_array_equal(example_vulnerability(scores, mask, fpr=1.0), [1.0, 1.0, 1.0, np.nan])


@pytest.mark.parametrize("fpr", [0.0, 0.01, 0.1, 0.5])
def test_example_vulnerability_matches_slow_reference(fpr):
    rng = np.random.default_rng(6)
    mask = rng.random((8, 60)) < 0.4
    mask[:, 5] = False
    scores = np.round(rng.normal(size=(8, 60)) + mask, 1)  # rounding makes ties
    scores[rng.random((8, 60)) < 0.05] = np.nan
    got = example_vulnerability(scores, mask, fpr=fpr)
    np.testing.assert_allclose(got, slow_vulnerability(scores, mask, fpr))
    assert np.isnan(got[5])


def test_example_vulnerability_errors():
    with pytest.raises(InvalidInputError, match=r"fpr must be in \[0.0, 1.0\], got 1.5"):
        example_vulnerability([[0.1, 0.2]], [[1, 0]], fpr=1.5)
    with pytest.raises(InvalidInputError, match="needs non-member pairs with finite scores"):
        example_vulnerability([[0.1, 0.2]], [[1, 1]])
    with pytest.raises(InvalidInputError, match="scores and train_mask must have the same shape"):
        example_vulnerability([[0.1, 0.2]], [[1, 0, 0]])


# ----------------------------------------------------------------------------- statistical sanity


def test_lira_beats_loss_attack_at_low_fpr():
    phi, mask = simulate(9)
    loss = np.logaddexp(0.0, -phi)  # cross-entropy of p_y = sigmoid(phi)
    lira = attack_roc(lira_scores(phi, mask), mask)
    offline = attack_roc(lira_scores(phi, mask, variant="offline"), mask)
    baseline = attack_roc(loss_attack_scores(loss), mask)
    assert lira.tpr_at_1pct > 2 * baseline.tpr_at_1pct
    assert lira.tpr_at_1pct > 0.05 and offline.tpr_at_1pct > 2 * baseline.tpr_at_1pct
    vulnerability = example_vulnerability(lira_scores(phi, mask), mask, fpr=0.01)
    top = np.argsort(-np.nan_to_num(vulnerability, nan=-1.0))[:40]
    assert np.isin(top, np.arange(40)).mean() > 0.8  # the planted vulnerable examples


def test_doctests():
    assert doctest.testmod(membership, raise_on_error=True).attempted > 0
