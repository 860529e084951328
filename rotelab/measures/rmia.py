"""RMIA, the robust membership inference attack (Zarifzadeh, Liu & Shokri, ICML 2024).

For a target model θ, a candidate x and a population sample z (an example θ did not train
on), RMIA compares how much θ raises the probability of each above what reference models
give it:

    LR_θ(x, z) = (Pr(x | θ) / Pr(x)) / (Pr(z | θ) / Pr(z))
    score(x)   = fraction of population samples z with LR_θ(x, z) >= γ

``Pr(x | θ)`` is θ's probability of x's given label; ``Pr(x)`` its average over reference
models trained like θ. Online, half the references trained on x: Pr(x) = (mean over "in"
references + mean over "out" references) / 2. Offline, none did, and the paper approximates
the "in" mean by a linear function of the "out" mean, Pr_in ≈ a·Pr_out + (1 - a), so that
Pr(x) = ((1 + a)·Pr_out(x) + 1 - a) / 2. Higher score = more likely a member.

Shapes follow :mod:`rotelab.measures.membership`: model axis first, (n_models, n_samples),
every model the target in turn and the others its references (leave-one-out).

Population samples. z should be the test split, with its labels: population data by
construction, the same for every target, and chosen without knowing any membership. (A
target's own non-members from the pool would be exchangeable with its non-member candidates
too, but picking them uses the very membership the attack is to infer.) No model trained on
z, so Pr(z) is the offline form in both variants, over the target's first N references.

Ties. The paper's score moves in steps of 1 / n_population, and every x that dominates all
z ties at 1: with the 360 test examples of digits, 12% of the members and 0.2% of the
non-members of a 128-model study tie there, and TPR at 0.1% FPR is 0. With ``tie_break``
(the default) the score is (count + r / (1 + r)) / (n_population + 1), r = LR(x) / γ for
x's own ratio LR(x) = Pr(x | θ) / Pr(x): within a target the same order as the fraction,
equal counts ordered by r; it never reorders two pairs whose fractions differ.

.. caution::
   The references must be trained like the target on random subsets of the same pool, and
   the population samples must come from the same distribution as the candidates, trained on
   by no model (see :func:`rmia_scores`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from rotelab.errors import InvalidInputError
from rotelab.measures.membership import (
    VARIANTS, Variant, _check_pair, _check_scores, check_n_reference, reference_order, reference_sides,
)
from rotelab.validation import check_choice, check_float

#: The offline coefficient used when none is given: Privacy Meter's default (its tuner picks
#: per dataset). Models that fit their whole subset (the memorization study's mlps) do best
#: near 0, the in models' probability taken as 1: 256 MNIST-1D mlps, N = 4, AUC 82.8 at a = 0,
#: 81.7 at 0.3, 76.9 at 1 (bench/rmia.py); regularized models that do not fit it want more.
DEFAULT_A = 0.3


def _check_population(population_margin: Any, n_models: int) -> np.ndarray:
    pop = _check_scores("population_margin", population_margin, allow_nan=False)
    if pop.shape[0] != n_models:
        raise InvalidInputError(
            f"inconsistent numbers of models: margin has {n_models}, population_margin has {pop.shape[0]}"
        )
    if pop.shape[1] == 0:
        raise InvalidInputError("population_margin has no population samples: give at least 1 column")
    return pop


def _log_marginal(log_p: np.ndarray, log_q: np.ndarray, a: float) -> np.ndarray:
    """log(((1 + a)·p + 1 - a) / 2) from log p and log q = log(1 - p), exact near 0 and near 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.logaddexp(np.log((1 + a) / 2) + log_p, np.log((1 - a) / 2))
        high = np.log1p(-(1 + a) / 2 * np.exp(log_q))
    return np.where(log_p < np.log(0.5), low, high)


def _log_mean(w: np.ndarray, v: np.ndarray, log_v: np.ndarray) -> np.ndarray:
    """log of the mean of ``v`` (= exp(log_v)) over the models (axis 0) with ``w`` 1 (0/1
    weights); NaN where none. Summed as is; columns whose sum underflows to 0 (every chosen
    value below 1e-308) are summed again in logs, shifted by their largest value."""
    n = w.sum(axis=0)
    total = (w * v).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n > 0, np.log(total) - np.log(np.where(n > 0, n, 1)), np.nan)
    redo = np.flatnonzero((total == 0) & (n > 0))
    if len(redo):
        chosen = np.where(w[:, redo] > 0, log_v[:, redo], -np.inf)
        shift = chosen.max(axis=0)
        out[redo] = np.log(np.exp(chosen - shift).sum(axis=0)) + shift - np.log(n[redo])
    return out


def _log_pr(sides: dict[str, np.ndarray], v: dict[str, np.ndarray], a: float) -> np.ndarray:
    """log Pr(x) per example (n_samples,) from one target's reference weights (see the module
    docstring); ``v`` holds p, q = 1 - p and their logs, each (n_models, n_samples). NaN where
    a needed side has no reference."""
    def means(w):
        return _log_mean(w, v["p"], v["log_p"]), _log_mean(w, v["q"], v["log_q"])

    out = means(sides["out"])
    if "in" not in sides:
        return _log_marginal(*out, a)
    inn = means(sides["in"])
    half = np.log(2.0)
    with np.errstate(invalid="ignore"):  # NaN where a side has no reference stays NaN
        return _log_marginal(np.logaddexp(inn[0], out[0]) - half, np.logaddexp(inn[1], out[1]) - half, 1.0)


def rmia_scores(
    margin: Any,
    train_mask: Any,
    population_margin: Any,
    *,
    variant: Variant = "offline",
    a: float = DEFAULT_A,
    gamma: float = 1.0,
    n_reference: int | None = None,
    rng: np.random.Generator | None = None,
    tie_break: bool = True,
) -> np.ndarray:
    """RMIA score of every (target, example) pair, every model the target in turn.

    Parameters
    ----------
    margin, train_mask : float and bool arrays of shape (n_models, n_samples)
        Logit-scaled confidence in each candidate's given label, as for LiRA; Pr(x | θ) =
        sigmoid(margin), computed without rounding confident predictions to 1.
    population_margin : float array of shape (n_models, n_population)
        Every model's margin on population samples z no model trained on: the test split
        (see "Population samples" in the module docstring).
    variant : "offline" (references that did not train on x, with ``a``) or "online".
    a : float in [0, 1], the offline coefficient: Pr_in ≈ a·Pr_out + 1 - a.
    gamma : float > 0, the likelihood ratio x must reach against z to dominate it.
    n_reference, rng : with N, each pair uses N references drawn by ``rng`` exactly as
        :func:`~rotelab.measures.membership.lira_scores` draws them. None: all others.
    tie_break : False: the paper's fraction of z that x dominates. True (default): the
        fraction refined by x's own ratio (see "Ties" in the module docstring).

    Returns float64 (n_models, n_samples) in [0, 1], higher = more likely a member; NaN
    where a needed side has no reference. Model 0 trained on the example and is surer of it
    than its references (ratio sigmoid(3) / 0.5 = 1.9 >= γ); every z has ratio 1:

    >>> rmia_scores([[3.0], [0.0], [0.0]], [[1], [0], [0]], np.zeros((3, 2)), a=1.0, gamma=1.5,
    ...             tie_break=False).tolist()
    [[1.0], [0.0], [0.0]]
    """
    m, mask, pop = _check_rmia(margin, train_mask, population_margin, a=a, gamma=gamma, tie_break=tie_break)
    variant = check_choice("RMIA variant", variant, VARIANTS)
    n_reference = check_n_reference(n_reference, rng, variant=variant)
    order = reference_order(len(m), rng=rng) if n_reference is not None else None
    v = {"p": expit(m), "q": expit(-m), "log_p": log_expit(m), "log_q": log_expit(-m)}
    vz = {"p": expit(pop), "q": expit(-pop), "log_p": log_expit(pop), "log_q": log_expit(-pop)}
    scores = np.full(m.shape, np.nan)
    for t in range(len(m)):
        row = np.delete(np.arange(len(m)), t) if order is None else order[t]
        sides = reference_sides(mask, row, n_reference=n_reference, variant=variant)
        ratio_x = v["log_p"][t] - _log_pr(sides, v, a)
        # z: no model trained on it, so its references are all "out" and Pr(z) is the offline form
        wz = np.zeros((len(m), 1))
        wz[row if n_reference is None else row[:n_reference]] = 1.0
        ratio_z = np.sort(vz["log_p"][t] - _log_pr({"out": wz}, vz, a))
        count = np.searchsorted(ratio_z, ratio_x - np.log(gamma), side="right")
        if tie_break:  # within a count, the larger ratio first: same order where counts differ
            count = count + expit(ratio_x - np.log(gamma))
        scores[t] = np.where(np.isnan(ratio_x), np.nan, count / (len(ratio_z) + tie_break))
    return scores


def _check_rmia(margin, train_mask, population_margin, *, a, gamma, tie_break):
    """Validate RMIA's arrays and numbers; return margin, mask and population as arrays."""
    m, mask = _check_pair("margin", margin, train_mask, allow_nan=False)
    pop = _check_population(population_margin, len(m))
    if not (np.isfinite(m).all() and np.isfinite(pop).all()):
        raise InvalidInputError("margin and population_margin must be finite; clip saturated margins first")
    check_float("a", a, low=0.0, high=1.0)
    check_float("gamma", gamma, low=0.0, low_open=True)
    if not isinstance(tie_break, (bool, np.bool_)):
        raise InvalidInputError(f"tie_break must be True or False, got {tie_break!r}")
    if len(m) < 2:
        raise InvalidInputError(f"RMIA needs at least 2 models (a target and a reference), got {len(m)}")
    return m, mask, pop
