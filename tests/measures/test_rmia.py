"""Tests for rotelab.measures.rmia and the reference-model subsets of LiRA and RMIA:
hand cases, slow loops as references, every error branch."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.stats import norm

from rotelab.errors import InvalidInputError
from rotelab.measures import rmia
from rotelab.measures.membership import attack_roc, lira_scores, loss_attack_scores, reference_order
from rotelab.measures.rmia import rmia_scores

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def attack_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """9 models x 30 candidates and 12 population samples; candidate 0 held by every model."""
    rng = np.random.default_rng(77)
    mask = rng.random((9, 30)) < 0.6
    mask[:, 0] = True
    difficulty = rng.normal(0.0, 2.0, 30)
    margin = difficulty + rng.normal(0.0, 1.0, (9, 30)) + 1.5 * mask
    population = rng.normal(0.0, 2.0, 12) + rng.normal(0.0, 1.0, (9, 12))
    return margin, mask, population


def simulate(seed: int, *, n_models: int = 32, n_samples: int = 300, n_population: int = 200):
    """Margins with per-example difficulty; members gain a little, the first 30 a lot."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_models, n_samples)) < 0.5
    difficulty = rng.normal(0.0, 3.0, n_samples)
    gain = np.full(n_samples, 0.3)
    gain[:30] = 5.0
    margin = difficulty + rng.normal(0.0, 1.0, (n_models, n_samples)) + gain * mask
    population = rng.normal(0.0, 3.0, n_population) + rng.normal(0.0, 1.0, (n_models, n_population))
    return margin, mask, population


# ----------------------------------------------------------------------------- slow references


def pick_references(order_row, mask_column, n_reference, variant):
    """Walk the target's order: offline the first N out models, online ⌈N/2⌉ out, ⌊N/2⌋ in."""
    big = len(order_row) if n_reference is None else n_reference
    want = {"out": big if variant == "offline" or n_reference is None else -(-big // 2),
            "in": 0 if variant == "offline" else (big if n_reference is None else big // 2)}
    chosen = {"out": [], "in": []}
    for s in order_row:
        side = "in" if mask_column[s] else "out"
        if len(chosen[side]) < want[side]:
            chosen[side].append(s)
    return chosen


def slow_rmia(margin, mask, population, *, variant="offline", a=0.3, gamma=1.0, n_reference=None,
              seed=None, tie_break=False):
    n_models, n_samples = margin.shape
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    if n_reference is None:
        order = [[s for s in range(n_models) if s != t] for t in range(n_models)]
    else:
        order = reference_order(n_models, rng=np.random.default_rng(seed))
    out = np.full(margin.shape, np.nan)
    for t in range(n_models):
        z_refs = list(order[t]) if n_reference is None else list(order[t][:n_reference])
        ratio_z = []
        for j in range(population.shape[1]):
            pr_out = np.mean([sig(population[s, j]) for s in z_refs])
            ratio_z.append(sig(population[t, j]) / (((1 + a) * pr_out + 1 - a) / 2))
        for i in range(n_samples):
            refs = pick_references(order[t], mask[:, i], n_reference, variant)
            if not refs["out"] or (variant == "online" and not refs["in"]):
                continue
            pr_out = np.mean([sig(margin[s, i]) for s in refs["out"]])
            if variant == "offline":
                pr_x = ((1 + a) * pr_out + 1 - a) / 2
            else:
                pr_x = (np.mean([sig(margin[s, i]) for s in refs["in"]]) + pr_out) / 2
            ratio_x = sig(margin[t, i]) / pr_x
            count = sum(ratio_x / rz >= gamma for rz in ratio_z)
            if tie_break:
                r = ratio_x / gamma
                out[t, i] = (count + r / (1 + r)) / (len(ratio_z) + 1)
            else:
                out[t, i] = count / len(ratio_z)
    return out


def slow_lira_selected(phi, mask, *, variant, fixed, n_reference, seed):
    """LiRA with each pair's N shadows, a Gaussian per side, pooled or per-example variance."""
    n_models, n_samples = phi.shape
    order = reference_order(n_models, rng=np.random.default_rng(seed))
    out = np.full(phi.shape, np.nan)
    for t in range(n_models):
        groups = {"in": [], "out": []}
        for i in range(n_samples):
            refs = pick_references(order[t], mask[:, i], n_reference, variant)
            for side in groups:
                groups[side].append([phi[s, i] for s in refs[side]])
        pooled = {}
        for side, per_example in groups.items():
            res = [v - np.mean(vals) for vals in per_example if vals for v in vals]
            dof = sum(len(vals) - 1 for vals in per_example if vals)
            if dof > 0:
                pooled[side] = sum(r * r for r in res) / dof
            else:  # no residual left: every shadow margin about their overall mean
                flat = [v for vals in per_example for v in vals]
                pooled[side] = np.var(flat, ddof=1) if len(flat) > 1 else np.nan
        for i in range(n_samples):
            fits = {}
            for side in ("in", "out"):
                vals = groups[side][i]
                if fixed and vals:
                    fits[side] = (np.mean(vals), np.sqrt(pooled[side]))
                elif not fixed and len(vals) >= 2:
                    fits[side] = (np.mean(vals), np.std(vals, ddof=1))
            if variant == "offline" and "out" in fits:
                out[t, i] = norm.logcdf(phi[t, i], *fits["out"])
            elif variant == "online" and len(fits) == 2:
                out[t, i] = norm.logpdf(phi[t, i], *fits["in"]) - norm.logpdf(phi[t, i], *fits["out"])
    return out


# ----------------------------------------------------------------------------- reference order


def test_reference_order_rows_are_permutations_of_the_others():
    order = reference_order(6, rng=np.random.default_rng(3))
    assert order.shape == (6, 5)
    for t, row in enumerate(order):
        assert sorted(row.tolist()) == [s for s in range(6) if s != t]
    np.testing.assert_array_equal(order, reference_order(6, rng=np.random.default_rng(3)))
    assert not np.array_equal(order, reference_order(6, rng=np.random.default_rng(4)))


def test_reference_order_errors():
    with pytest.raises(InvalidInputError, match="n_models must be >= 2, got 1"):
        reference_order(1, rng=np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="rng must be a numpy.random.Generator, got int"):
        reference_order(3, rng=0)


# ----------------------------------------------------------------------------- LiRA with N references


@pytest.mark.parametrize("variant", ["online", "offline"])
@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize("n_reference", [2, 3, 5])
def test_lira_with_n_reference_matches_loop(attack_data, variant, fixed, n_reference):
    phi, mask, _ = attack_data
    got = lira_scores(phi, mask, variant=variant, fixed_variance=fixed, n_reference=n_reference,
                      rng=np.random.default_rng(11))
    want = slow_lira_selected(phi, mask, variant=variant, fixed=fixed, n_reference=n_reference, seed=11)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def test_lira_offline_single_reference_uses_the_overall_spread(attack_data):
    phi, mask, _ = attack_data
    got = lira_scores(phi, mask, variant="offline", n_reference=1, rng=np.random.default_rng(5))
    want = slow_lira_selected(phi, mask, variant="offline", fixed=True, n_reference=1, seed=5)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    out_shadows = (~mask).sum(axis=0) - ~mask  # leave-one-out
    np.testing.assert_array_equal(np.isfinite(got), out_shadows >= 1)
    assert np.isnan(got[:, 0]).all() and (out_shadows == 1).any()  # example 0: no out model


@pytest.mark.parametrize("variant", ["online", "offline"])
def test_lira_all_references_equals_leave_one_out(attack_data, variant):
    phi, mask, _ = attack_data
    np.testing.assert_allclose(
        lira_scores(phi, mask, variant=variant, n_reference=100, rng=np.random.default_rng(0)),
        lira_scores(phi, mask, variant=variant), rtol=1e-9, atol=1e-9,
    )


def test_lira_n_reference_errors(attack_data):
    phi, mask, _ = attack_data
    with pytest.raises(InvalidInputError, match="online attacks need n_reference >= 2"):
        lira_scores(phi, mask, n_reference=1, rng=np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="n_reference needs rng"):
        lira_scores(phi, mask, variant="offline", n_reference=2)
    with pytest.raises(InvalidInputError, match="rng must be a numpy.random.Generator, got RandomState"):
        lira_scores(phi, mask, variant="offline", n_reference=2, rng=np.random.RandomState(0))
    with pytest.raises(InvalidInputError, match="n_reference must be >= 1, got 0"):
        lira_scores(phi, mask, variant="offline", n_reference=0, rng=np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="n_reference must be a whole number"):
        lira_scores(phi, mask, variant="offline", n_reference=2.5, rng=np.random.default_rng(0))


# ----------------------------------------------------------------------------- RMIA


def test_rmia_hand_computed():
    # 3 models, 1 candidate (model 0 trained on it), 2 population samples; a = 1 (Pr = out mean)
    margin = [[np.log(3.0)], [0.0], [0.0]]  # model 0: p = 0.75; models 1, 2: p = 0.5
    mask = [[1], [0], [0]]
    population = [[0.0, np.log(4.0)], [0.0, 0.0], [0.0, 0.0]]  # target 0: p_z = 0.5, 0.8
    # target 0: Pr(x) = 0.5, ratio 1.5; ratios of z: 0.5/0.5 = 1, 0.8/0.5 = 1.6 -> dominates 1 of 2
    # target 1: refs 0 (in) and 2 (out); Pr_out = 0.5, ratio 1; z: 0.5 / mean(0.5, 0.5) = 1,
    #   0.5 / mean(0.8, 0.5) = 0.77 -> dominates 2 of 2 at gamma 1; only z1 at gamma 1.2
    got = rmia_scores(margin, mask, population, a=1.0, tie_break=False)
    np.testing.assert_allclose(got[:2, 0], [0.5, 1.0])
    got = rmia_scores(margin, mask, population, a=1.0, gamma=1.2, tie_break=False)
    np.testing.assert_allclose(got[:2, 0], [0.5, 0.5])
    # tie-break: (count + r / (1 + r)) / 3 with r = 1.5 / 1.2 = 1.25 for target 0
    got = rmia_scores(margin, mask, population, a=1.0, gamma=1.2)
    assert got[0, 0] == pytest.approx((1 + 1.25 / 2.25) / 3)


def test_rmia_offline_a_approximates_the_in_models():
    # a = 0: Pr(x) = (Pr_out + 1) / 2, the in models taken to give p = 1
    margin = [[0.0], [0.0]]
    mask = [[1], [0]]
    population = [[0.0], [0.0]]
    # target 0: Pr(x) = (0.5 + 1) / 2 = 0.75, ratio 2/3; z: the same, ratio 2/3 -> dominates at gamma 1
    assert rmia_scores(margin, mask, population, a=0.0, tie_break=False)[0, 0] == 1.0
    assert rmia_scores(margin, mask, population, a=0.0, gamma=1.01, tie_break=False)[0, 0] == 0.0


@pytest.mark.parametrize("variant", ["offline", "online"])
@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("gamma", [1.0, 1.7])
@pytest.mark.parametrize("tie_break", [False, True])
def test_rmia_matches_loop_with_all_references(attack_data, variant, a, gamma, tie_break):
    margin, mask, population = attack_data
    got = rmia_scores(margin, mask, population, variant=variant, a=a, gamma=gamma, tie_break=tie_break)
    want = slow_rmia(margin, mask, population, variant=variant, a=a, gamma=gamma, tie_break=tie_break)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant", ["offline", "online"])
@pytest.mark.parametrize("n_reference", [1, 2, 3, 5])
def test_rmia_matches_loop_with_n_references(attack_data, variant, n_reference):
    margin, mask, population = attack_data
    if variant == "online" and n_reference == 1:
        return  # an error, tested below
    got = rmia_scores(margin, mask, population, variant=variant, n_reference=n_reference,
                      rng=np.random.default_rng(21), tie_break=False)
    want = slow_rmia(margin, mask, population, variant=variant, n_reference=n_reference, seed=21)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_rmia_nan_where_no_reference_and_all_references_equal_none(attack_data):
    margin, mask, population = attack_data
    offline = rmia_scores(margin, mask, population)
    out_shadows = (~mask).sum(axis=0) - ~mask
    np.testing.assert_array_equal(np.isfinite(offline), out_shadows >= 1)
    assert np.isnan(offline[:, 0]).all()  # no model left example 0 out
    big = rmia_scores(margin, mask, population, n_reference=50, rng=np.random.default_rng(1))
    np.testing.assert_allclose(big, offline, rtol=1e-12)
    online = rmia_scores(margin, mask, population, variant="online")
    assert np.isnan(online[:, 0]).all()


def test_rmia_marginal_is_exact_for_saturated_probabilities():
    from scipy.special import log_expit

    # p = 1 - e^-46 rounds to 1.0 in float64; log Pr must keep the e^-46
    lp, lq = log_expit(np.array([46.0])), log_expit(np.array([-46.0]))
    np.testing.assert_allclose(rmia._log_marginal(lp, lq, 1.0), [-np.exp(-46.0)], rtol=1e-9)
    np.testing.assert_allclose(rmia._log_marginal(lp, lq, 0.3), [-0.65 * np.exp(-46.0)], rtol=1e-9)
    # p = e^-800 underflows to 0.0; its log stays
    lp, lq = log_expit(np.array([-800.0])), log_expit(np.array([800.0]))
    np.testing.assert_allclose(rmia._log_marginal(lp, lq, 1.0), [-800.0], rtol=1e-12)
    w = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    log_v = np.array([[-800.0, -2.0], [-801.0, 5.0], [0.0, -3.0]])  # exp(-800) underflows: summed in logs
    got = rmia._log_mean(w, np.exp(log_v), log_v)
    want = [np.logaddexp(-800.0, -801.0) - np.log(2.0), np.logaddexp(-2.0, -3.0) - np.log(2.0)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(rmia._log_mean(np.zeros((3, 1)), np.ones((3, 1)), np.zeros((3, 1)))).all()


def test_rmia_scores_in_unit_interval_and_tie_break_keeps_order(attack_data):
    margin, mask, population = attack_data
    plain = rmia_scores(margin, mask, population, tie_break=False)
    broken = rmia_scores(margin, mask, population)
    ok = np.isfinite(plain)
    assert ((broken[ok] >= 0) & (broken[ok] <= 1)).all()
    a, b = plain[ok], broken[ok]
    differ = a[:, None] > a[None, :]
    assert (b[:, None] > b[None, :])[differ].all()  # never reorders pairs the fraction orders


def test_rmia_beats_the_loss_attack_on_simulated_members():
    margin, mask, population = simulate(9)
    loss = attack_roc(loss_attack_scores(np.logaddexp(0.0, -margin)), mask)
    scores = attack_roc(rmia_scores(margin, mask, population), mask)
    few = attack_roc(rmia_scores(margin, mask, population, n_reference=2, rng=np.random.default_rng(0)), mask)
    assert scores.auc > loss.auc + 0.015 and few.auc > loss.auc + 0.01
    assert scores.tpr_at_1pct > 1.5 * loss.tpr_at_1pct and few.tpr_at_1pct > 1.5 * loss.tpr_at_1pct
    assert scores.tpr_at_0_1pct > 2 * loss.tpr_at_0_1pct


def test_rmia_errors(attack_data):
    margin, mask, population = attack_data
    rng = np.random.default_rng(0)
    cases = [
        (dict(margin=margin[0]), r"margin must have shape \(n_models, n_samples\)"),
        (dict(train_mask=mask[:, :5]), "margin and train_mask must have the same shape"),
        (dict(population_margin=population[0]), r"population_margin must have shape \(n_models, n_samples\)"),
        (dict(population_margin=population[:4]), "inconsistent numbers of models: margin has 9, population_margin has 4"),
        (dict(population_margin=population[:, :0]), "population_margin has no population samples"),
        (dict(population_margin=np.where(population > 2, np.nan, population)), "population_margin contains .* NaN"),
        (dict(margin=np.where(margin > 2, np.inf, margin)), "must be finite; clip saturated margins"),
        (dict(variant="global"), "unknown RMIA variant 'global'"),
        (dict(a=1.5), r"a must be in \[0.0, 1.0\], got 1.5"),
        (dict(gamma=0.0), r"gamma must be in \(0.0, inf\], got 0.0"),
        (dict(tie_break="yes"), "tie_break must be True or False"),
        (dict(margin=margin[:1], train_mask=mask[:1], population_margin=population[:1]), "at least 2 models"),
        (dict(variant="online", n_reference=1, rng=rng), "online attacks need n_reference >= 2"),
        (dict(n_reference=2), "n_reference needs rng"),
        (dict(n_reference=2, rng=3), "rng must be a numpy.random.Generator, got int"),
    ]
    for change, message in cases:
        kwargs = dict(margin=margin, train_mask=mask, population_margin=population) | change
        with pytest.raises(InvalidInputError, match=message):
            rmia_scores(**kwargs)


def test_doctests():
    assert doctest.testmod(rmia, raise_on_error=True).attempted > 0
