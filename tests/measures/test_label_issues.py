"""Tests for rotelab.measures.label_issues: a slow loop as the reference, hand cases,
calibration on simulated label noise, every error branch."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.errors import InvalidInputError
from rotelab.measures.label_issues import TEMPERATURES, LabelIssues, label_issues

# ----------------------------------------------------------------------------- fixtures


def simulated(seed: int, *, n_models: int = 24, n_samples: int = 300, n_classes: int = 4, noise: float = 0.1):
    """Subset models whose out predictions follow the true class (softly); ``noise`` of the
    labels flipped to another class at random. Returns probs, mask, given labels, flipped, true."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_classes, n_samples)
    flipped = rng.random(n_samples) < noise
    given = np.where(flipped, (true + rng.integers(1, n_classes, n_samples)) % n_classes, true)
    mask = rng.random((n_models, n_samples)) < 0.6
    hard = rng.random(n_samples) < 0.1  # atypical: the out models half lean to another class
    lean = (true + 1) % n_classes
    logits = rng.normal(0.0, 1.0, (n_models, n_samples, n_classes))
    logits[:, np.arange(n_samples), true] += 6.0
    logits[:, np.arange(n_samples), lean] += np.where(hard, 5.5, 0.0)
    logits[mask, given[np.nonzero(mask)[1]]] += 8.0  # the in models fit the given label
    probs = np.exp(logits - logits.max(axis=2, keepdims=True))
    probs /= probs.sum(axis=2, keepdims=True)
    return probs.astype(np.float16), mask, given, flipped, true


@pytest.fixture
def small():
    """6 models, 40 examples, 3 classes; example 0 held by every model."""
    probs, mask, given, _, _ = simulated(5, n_models=6, n_samples=40, n_classes=3, noise=0.2)
    mask[:, 0] = True
    return probs, mask, given


# ----------------------------------------------------------------------------- slow reference


def slow_label_issues(probs, mask, labels, decision="posterior"):
    """The same model by loops: per temperature the out ensemble, EM for per-class rates,
    the likelihood-maximizing temperature, then the posterior per example."""
    p = np.maximum(probs.astype(np.float64), 1e-7)
    n_models, n, c = p.shape
    has = [not mask[:, i].all() for i in range(n)]
    best = None
    for t in TEMPERATURES:
        pi = np.full((n, c), np.nan)
        for i in range(n):
            rows = []
            for m in range(n_models):
                if not mask[m, i]:
                    e = np.exp(np.log(p[m, i]) / t - np.max(np.log(p[m, i]) / t))
                    rows.append(e / e.sum())
            if rows:
                pi[i] = np.mean(rows, axis=0)
        rates = [0.05] * c
        for _ in range(500):
            post = {}
            for i in range(n):
                if has[i]:
                    r, own = rates[labels[i]], pi[i, labels[i]]
                    flip = r * (1 - own) / (c - 1)
                    post[i] = flip / (flip + (1 - r) * own)
            new = []
            for j in range(c):
                vals = [post[i] for i in post if labels[i] == j]
                new.append(min(max(np.mean(vals) if vals else 0.0, 1e-6), 1 - 1e-6))
            done = max(abs(a - b) for a, b in zip(new, rates)) < 1e-9
            rates = new
            if done:
                break
        ll = 0.0
        for i in range(n):
            if has[i]:
                r, own = rates[labels[i]], pi[i, labels[i]]
                ll += np.log(r * (1 - own) / (c - 1) + (1 - r) * own)
        if best is None or ll > best[0]:
            best = (ll, t, rates, pi)
    _, t, rates, pi = best
    p_issue = np.full(n, np.nan)
    for i in range(n):
        if has[i]:
            r, own = rates[labels[i]], pi[i, labels[i]]
            flip = r * (1 - own) / (c - 1)
            p_issue[i] = flip / (flip + (1 - r) * own)
    return t, np.array(rates), pi, p_issue


# ----------------------------------------------------------------------------- tests


def test_matches_slow_reference(small):
    probs, mask, given = small
    got = label_issues(probs, mask, given)
    t, rates, pi, p_issue = slow_label_issues(probs, mask, given)
    assert got.temperature == t
    np.testing.assert_allclose(got.noise_rate, rates, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got.out_probs, pi, rtol=1e-9)
    np.testing.assert_allclose(got.issue_probability, p_issue, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(got.label_issue, np.nan_to_num(p_issue) > 0.5)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(got.label_quality, np.log((1 - p_issue) / p_issue), rtol=1e-6)
    # the raw out signals, by loops
    for i in range(len(given)):
        outs = [m for m in range(len(mask)) if not mask[m, i]]
        if not outs:
            assert np.isnan(got.p_out_given[i]) and got.out_label[i] == -1
            continue
        assert got.p_out_given[i] == pytest.approx(np.mean([float(probs[m, i, given[i]]) for m in outs]))
        votes = np.bincount([int(np.argmax(probs[m, i])) for m in outs], minlength=3)
        assert got.out_label[i] == np.argmax(votes)
        assert got.out_agreement[i] == pytest.approx(votes.max() / len(outs))


def test_suggestion_and_confidence_follow_the_posterior(small):
    probs, mask, given = small
    got = label_issues(probs, mask, given)
    for i in np.flatnonzero(got.label_issue):
        others = [k for k in range(3) if k != given[i]]
        k = max(others, key=lambda c: got.out_probs[i, c])
        assert got.suggested_label[i] == k
        share = got.out_probs[i, k] / (1 - got.out_probs[i, given[i]])
        assert got.confidence[i] == pytest.approx(got.issue_probability[i] * share)
    keep = ~got.label_issue & ~np.isnan(got.issue_probability)
    np.testing.assert_array_equal(got.suggested_label[keep], given[keep])
    np.testing.assert_allclose(got.confidence[keep], 1 - got.issue_probability[keep])


def test_example_without_out_models_is_never_flagged(small):
    probs, mask, given = small
    got = label_issues(probs, mask, given)
    assert not got.label_issue[0] and got.suggested_label[0] == -1 and got.out_label[0] == -1
    for field in ("issue_probability", "label_quality", "confidence", "p_out_given", "out_agreement"):
        assert np.isnan(getattr(got, field)[0]), field


def test_uninformative_models_keep_the_prior():
    # every out model says 1/2 for both classes: the likelihood ignores the temperature (the
    # first is kept), EM's fixed point is its start 0.05, and P(issue) = 0.05 everywhere
    probs = np.full((2, 4, 2), 0.5)
    mask = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
    got = label_issues(probs, mask, [0, 1, 0, 1])
    assert got.temperature == TEMPERATURES[0]
    np.testing.assert_allclose(got.noise_rate, [0.05, 0.05])
    np.testing.assert_allclose(got.issue_probability, 0.05)
    np.testing.assert_allclose(got.label_quality, np.log(0.95 / 0.05))
    assert not got.label_issue.any()
    np.testing.assert_array_equal(got.suggested_label, [0, 1, 0, 1])


def test_flags_flipped_labels_with_calibrated_probabilities():
    probs, mask, given, flipped, true = simulated(11, n_models=32, n_samples=1200)
    got = label_issues(probs, mask, given)
    assert isinstance(got, LabelIssues)
    assert abs(got.noise_rate.mean() - flipped.mean()) < 0.03
    tp = (got.label_issue & flipped).sum()
    precision, recall = tp / got.label_issue.sum(), tp / flipped.sum()
    assert precision > 0.85 and recall > 0.8
    sure = got.issue_probability > 0.9
    assert flipped[sure].mean() > 0.85  # calibration at the top
    assert flipped[got.issue_probability < 0.1].mean() < 0.05
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(flipped, -got.label_quality) > 0.95
    found = got.label_issue & flipped
    assert (got.suggested_label[found] == true[found]).mean() > 0.9


def test_f1_decision_is_the_expected_f1_cut(small):
    probs, mask, given = small
    got = label_issues(probs, mask, given, decision="f1")
    p = np.nan_to_num(got.issue_probability)
    best_k, best = 0, -1.0
    for k in range(1, len(p) + 1):  # slow: the expected F1 of flagging the top k
        top = np.sort(p)[::-1][:k]
        value = 2 * top.sum() / (k + p.sum())
        if value > best:
            best_k, best = k, value
    assert got.label_issue.sum() == best_k
    assert p[got.label_issue].min() >= p[~got.label_issue].max()
    plain = label_issues(probs, mask, given)
    np.testing.assert_array_equal(got.issue_probability, plain.issue_probability)


def test_errors(small):
    probs, mask, given = small
    cases = [
        (dict(probs=probs[0]), r"probs must have shape \(n_models, n_samples, n_classes\)"),
        (dict(probs=probs[..., :1]), "n_classes >= 2"),
        (dict(probs=np.ones(probs.shape, dtype=int)), "probs must hold floating-point probabilities"),
        (dict(probs=np.where(probs > 0.5, np.nan, probs)), r"probs must be probabilities in \[0, 1\]"),
        (dict(probs=probs.astype(np.float64) * 3), r"probs must be probabilities in \[0, 1\]"),
        (dict(probs=-probs.astype(np.float64)), r"probs must be probabilities in \[0, 1\]"),
        (dict(train_mask=mask[:, :5]), r"probs and train_mask disagree"),
        (dict(train_mask=mask * 2), "train_mask must be bool"),
        (dict(labels=given[:5]), "inconsistent numbers of samples"),
        (dict(labels=np.full(len(given), 3)), "out of range for 3 classes"),
        (dict(train_mask=np.ones_like(mask)), "no example was left out by any model"),
        (dict(decision="max"), "unknown decision 'max': expected one of posterior, f1"),
    ]
    for change, message in cases:
        kwargs = dict(probs=probs, train_mask=mask, labels=given) | change
        with pytest.raises(InvalidInputError, match=message):
            label_issues(**kwargs)
