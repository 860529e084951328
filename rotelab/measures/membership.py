"""Membership inference: how well can an attacker tell training members from non-members?

Attack scores have shape (n_models, n_samples), model axis first; higher = more likely a
member. ``train_mask`` (n_models, n_samples) bool is the ground truth.

.. caution::
   Attack success is only meaningful when each model's subset was drawn at random and the
   non-members come from the same distribution as the members; otherwise the attack can
   tell the two distributions apart rather than detect memorization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

from rotelab.errors import InvalidInputError
from rotelab.measures.memorization import check_bool_array
from rotelab.validation import check_choice, check_float, check_int, check_labels

Variant = Literal["online", "offline"]
VARIANTS: tuple[str, ...] = ("online", "offline")

#: Median shadows per side below which LiRA pools one variance over examples (Carlini et al.).
FIXED_VARIANCE_BELOW = 64
#: Variances are floored at this fraction of the overall variance of the margins.
_VAR_FLOOR = 1e-8


def _check_scores(name: str, value: Any, *, allow_nan: bool) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must have shape (n_models, n_samples), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not allow_nan and np.isnan(arr).any():
        raise InvalidInputError(f"{name} contains {int(np.isnan(arr).sum())} NaN values; every model needs a value for every example")
    return arr


def _check_pair(name: str, value: Any, train_mask: Any, *, allow_nan: bool) -> tuple[np.ndarray, np.ndarray]:
    arr = _check_scores(name, value, allow_nan=allow_nan)
    mask = check_bool_array("train_mask", train_mask)
    if arr.shape != mask.shape:
        raise InvalidInputError(
            f"{name} and train_mask must have the same shape (n_models, n_samples), "
            f"got {arr.shape} and {mask.shape}"
        )
    return arr, mask


# ----------------------------------------------------------------------------- attacks


def loss_attack_scores(loss: Any) -> np.ndarray:
    """Loss-threshold attack (Yeom et al. 2018): score = -loss, higher = more likely member.

    ``loss``: float (n_models, n_samples), each model's loss on each example (inf allowed).
    Returns float64 (n_models, n_samples). One global threshold for all examples, so it
    mostly detects the generalization gap, not which examples are memorized.
    """
    return -_check_scores("loss", loss, allow_nan=False)


def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
    """LiRA's margin phi = log(p_y) - log(1 - p_y) = logit_y - logsumexp(other logits).

    ``logits``: float (n_models, n_samples, n_classes), n_classes >= 2; ``labels``: int
    (n_samples,). Returns float64 (n_models, n_samples), stable for confident models;
    higher = more confident in the given label.

    >>> logit_scaled_confidence([[[2.0, 0.0]]], [0]).round(6).tolist()
    [[2.0]]
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 3 or z.shape[2] < 2:
        raise InvalidInputError(
            f"logits must have shape (n_models, n_samples, n_classes) with n_classes >= 2, got shape {z.shape}"
        )
    if not np.isfinite(z).all():
        raise InvalidInputError("logits contain NaN or infinite values")
    y = check_labels("labels", labels, n_samples=z.shape[1], n_classes=z.shape[2])
    own = np.take_along_axis(z, y[None, :, None], axis=2)[..., 0]
    others = np.where(np.arange(z.shape[2]) == y[:, None], -np.inf, z)
    return own - logsumexp(others, axis=2)


def _loo_moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-out count, mean and residual sum of squares of ``x`` over models with ``w``.

    For target t and example i the shadows are the models s != t with w[s, i]. ``x`` should
    be centred per example so the sum-of-squares identity does not lose precision.
    """
    xw = x * w
    n = w.sum(axis=0) - w  # (n_models, n_samples)
    s = xw.sum(axis=0) - xw
    ss = (xw * x).sum(axis=0) - xw * x
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        rss = np.maximum(ss - s * mean, 0.0)
    return n, mean, rss


def _variance(n: np.ndarray, rss: np.ndarray, fixed: bool, floor: float,
              fallback: np.ndarray | None = None) -> np.ndarray:
    """Per-(target, example) variance: pooled over examples per target, or per example.

    ``fallback`` (n_models, 1): a target's fixed variance where no residual is left to pool."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if fixed:  # one variance per target: residuals about each example's mean, pooled
            has = n >= 1
            dof = np.where(has, n - 1, 0).sum(axis=1, keepdims=True)
            var = np.where(has, rss, 0).sum(axis=1, keepdims=True) / np.where(dof > 0, dof, np.nan)
            if fallback is not None:
                var = np.where(dof > 0, var, fallback)
            var = np.where(has, var, np.nan)
        else:
            var = np.where(n >= 2, rss / (n - 1), np.nan)
    return np.maximum(var, floor)  # NaN stays NaN


def lira_fixed_variance(train_mask: Any, *, variant: Variant = "online", n_reference: int | None = None) -> bool:
    """Whether :func:`lira_scores` (``fixed_variance=None``) pools one variance for ``train_mask``.

    It does when the median number of shadows on a side the variant uses is below
    ``FIXED_VARIANCE_BELOW`` (Carlini et al.): online uses both sides, offline only the "out"
    side; all other models (leave-one-out), or at most ``n_reference`` of them (⌈N/2⌉ out and
    ⌊N/2⌋ in online). ``train_mask``: bool of shape (n_models, n_samples).
    """
    mask = check_bool_array("train_mask", train_mask)
    variant = check_choice("LiRA variant", variant, VARIANTS)
    n_in = mask.sum(axis=0)
    out = (len(mask) - n_in)[None, :] - ~mask  # out shadows per (target, example)
    sides = [out if n_reference is None else np.minimum(out, -(-n_reference // 2) if variant == "online"
                                                        else n_reference)]
    if variant == "online":
        inside = n_in[None, :] - mask
        sides.append(inside if n_reference is None else np.minimum(inside, n_reference // 2))
    return min(float(np.median(side)) for side in sides) < FIXED_VARIANCE_BELOW


# ----------------------------------------------------------------------------- reference models


def check_rng(rng: Any) -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``; the fix is ``np.random.default_rng(seed)``."""
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; pass np.random.default_rng(seed)"
        )
    return rng


def check_n_reference(n_reference: Any, rng: Any, *, variant: str) -> int | None:
    """Validate the reference-model count of an attack: None (all) or an int >= 1 (>= 2 online)
    together with an ``rng`` that draws them."""
    if n_reference is None:
        return None
    n_reference = check_int("n_reference", n_reference, minimum=1)
    if variant == "online" and n_reference < 2:
        raise InvalidInputError(
            f"online attacks need n_reference >= 2 (a reference that trained on the example and one "
            f"that did not), got {n_reference}; use variant='offline' for a single reference model"
        )
    if rng is None:
        raise InvalidInputError("n_reference needs rng, the generator that draws the reference models: "
                                "pass rng=np.random.default_rng(seed)")
    check_rng(rng)
    return n_reference


def reference_order(n_models: int, *, rng: np.random.Generator) -> np.ndarray:
    """Each target's reference models in a random order: int64 (n_models, n_models - 1).

    Row t is a permutation of the models other than t, drawn with ``rng.permutation`` for
    t = 0, 1, ... in turn. An attack with ``n_reference=N`` gives target t, for each example,
    the first N models of row t that did not train on it (offline), or the first ⌈N/2⌉ that
    did not and the first ⌊N/2⌋ that did (online). The same generator state therefore gives
    every attack the same references, and N references are the first N of N' > N.

    >>> reference_order(3, rng=np.random.default_rng(0)).shape
    (3, 2)
    """
    n_models = check_int("n_models", n_models, minimum=2)
    check_rng(rng)
    others = np.arange(n_models - 1)
    return np.stack([rng.permutation(np.where(others >= t, others + 1, others)) for t in range(n_models)])


def _first(side: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Bool (n_models, n_samples): for each example, the first ``n`` models of ``order`` with
    ``side`` True (all of them when fewer); False for models outside ``order``."""
    picked = np.zeros_like(side)
    ranked = side[order]
    picked[order] = ranked & (np.cumsum(ranked, axis=0, dtype=np.int32) <= n)
    return picked


def reference_sides(train_mask: np.ndarray, order: np.ndarray, *, n_reference: int | None,
                    variant: str) -> dict[str, np.ndarray]:
    """One target's references for each example, as float64 0/1 weights (n_models, n_samples).

    ``order``: int (n_others,), the target's models in preference order (a row of
    :func:`reference_order`, or all other models when ``n_reference`` is None). Key "out":
    the first N models of ``order`` that did not train on the example (⌈N/2⌉ online); key
    "in" (online only): the first ⌊N/2⌋ that did. ``n_reference=None`` takes all of them.
    Internal: inputs are trusted (validated by the attacks that call it).
    """
    mask = train_mask
    n_all = len(order)
    n_out = n_all if n_reference is None else -(-n_reference // 2) if variant == "online" else n_reference
    sides = {"out": _first(~mask, order, n_out)}
    if variant == "online":
        sides["in"] = _first(mask, order, n_all if n_reference is None else n_reference // 2)
    return {k: v.astype(np.float64) for k, v in sides.items()}


def lira_scores(
    margin: Any,
    train_mask: Any,
    *,
    variant: Variant = "online",
    fixed_variance: bool | None = None,
    n_reference: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Likelihood-ratio attack (LiRA, Carlini et al. 2022), every model the target in turn.

    For target t and example i the shadows are all other models (leave-one-out), or with
    ``n_reference`` a few of them (see :func:`reference_order`). A Gaussian is fitted to the
    shadows' margins for those that trained on i ("in") and those that did not ("out").
    Scores, higher = more likely t trained on i:

    - "online":  log N(phi_ti; mu_in, var_in) - log N(phi_ti; mu_out, var_out)
    - "offline": log Phi((phi_ti - mu_out) / sd_out), one-sided, out shadows only

    Parameters
    ----------
    margin : float array of shape (n_models, n_samples)
        Logit-scaled confidence phi = log p_y - log(1 - p_y); see :func:`logit_scaled_confidence`.
    train_mask : bool array of shape (n_models, n_samples)
    variant : "online" or "offline"
    fixed_variance : bool or None
        True: one variance per side shared by all examples (pooled residuals about each
        example's mean). False: per-example variances. None: fixed when the median number
        of shadows per side used is below 64.
    n_reference, rng : None: every other model is a shadow. N (with a numpy Generator
        ``rng``): each pair uses N shadows, as :func:`reference_order` says. Where no example
        has two shadows on a side (N <= 2 online, N = 1 offline), no residual is left to pool,
        and that side's fixed variance is the spread of all its shadow margins about their
        overall mean, as Carlini et al.'s code fixes it.

    Returns float64 (n_models, n_samples), NaN where a side has no shadow (or fewer than 2
    with per-example variances). Caution: the shadows must be trained like the target on
    random subsets of the same pool.
    """
    phi, mask, variant, n_reference = _check_lira(margin, train_mask, variant, fixed_variance, n_reference, rng)

    centred = phi - phi.mean(axis=0)  # the per-example shift cancels in every score
    spread = centred.var()
    floor = _VAR_FLOOR * (spread if spread > 0 else 1.0)
    x, sides, spreads = _shadow_moments(phi, centred, mask, variant, n_reference, rng)
    if fixed_variance is None:
        fixed_variance = lira_fixed_variance(mask, variant=variant, n_reference=n_reference)
    fit = {k: (mean, _variance(n, rss, bool(fixed_variance), floor, spreads[k]))
           for k, (n, mean, rss) in sides.items()}

    mu_out, var_out = fit["out"]
    with np.errstate(invalid="ignore"):
        if variant == "offline":
            return norm.logcdf((x - mu_out) / np.sqrt(var_out))
        mu_in, var_in = fit["in"]
        return norm.logpdf(x, mu_in, np.sqrt(var_in)) - norm.logpdf(x, mu_out, np.sqrt(var_out))


def _shadow_moments(phi, centred, mask, variant, n_reference, rng):
    """The margins to score and, per side, the shadows' (count, mean, residual sum of
    squares), each (n_models, n_samples), with the fallback spreads (see ``_variance``)."""
    if n_reference is not None:
        sides, spreads = _selected_moments(phi, mask, reference_order(len(phi), rng=rng), n_reference, variant)
        return phi, sides, spreads
    w_in = mask.astype(np.float64)  # leave-one-out over all models, on centred margins for precision
    sides = {"out": _loo_moments(centred, 1.0 - w_in)}
    if variant == "online":
        sides["in"] = _loo_moments(centred, w_in)
    return centred, sides, {k: None for k in sides}


def _check_lira(margin, train_mask, variant, fixed_variance, n_reference, rng):
    """Validate LiRA's inputs; return margin, mask, variant and n_reference."""
    phi, mask = _check_pair("margin", margin, train_mask, allow_nan=False)
    if not np.isfinite(phi).all():
        raise InvalidInputError("margin contains infinite values; compute it with logit_scaled_confidence")
    variant = check_choice("LiRA variant", variant, VARIANTS)
    if fixed_variance is not None and not isinstance(fixed_variance, (bool, np.bool_)):
        raise InvalidInputError(f"fixed_variance must be True, False or None, got {fixed_variance!r}")
    if phi.shape[0] < 2:
        raise InvalidInputError(f"LiRA needs at least 2 models (a target and a shadow), got {phi.shape[0]}")
    return phi, mask, variant, check_n_reference(n_reference, rng, variant=variant)


def _selected_moments(phi: np.ndarray, mask: np.ndarray, order: np.ndarray, n_reference: int, variant: str):
    """Per side: count, mean and residual sum of squares (n_models, n_samples) of each target's
    chosen shadows, and the variance of all of a target's shadow margins about their overall
    mean (n_models, 1), the fallback when no residual is left to pool."""
    stats: dict[str, list[list[np.ndarray]]] = {}
    for t in range(len(phi)):
        for side, w in reference_sides(mask, order[t], n_reference=n_reference, variant=variant).items():
            n = w.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = (w * phi).sum(axis=0) / n
            rss = (w * (phi - np.nan_to_num(mean)) ** 2).sum(axis=0)
            total = w.sum()
            grand = (w * phi).sum() / total if total > 0 else 0.0
            spread = (w * (phi - grand) ** 2).sum() / (total - 1) if total > 1 else np.nan
            stats.setdefault(side, []).append([n, mean, rss, np.array([spread])])
    sides = {k: tuple(np.stack([row[j] for row in v]) for j in range(3)) for k, v in stats.items()}
    spreads = {k: np.stack([row[3] for row in v]) for k, v in stats.items()}
    return sides, spreads


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True, eq=False)
class AttackROC:
    """ROC of an attack pooled over every (model, example) pair with a finite score.

    ``fpr``, ``tpr``: float arrays of shape (n_thresholds,), from sklearn's ``roc_curve``.
    ``auc``: area under it (0.5 = chance). ``tpr_at_0_1pct``, ``tpr_at_1pct``: largest TPR
    whose FPR is <= 0.001 and <= 0.01; with fewer than 1/bound non-members they are 0 by
    construction. ``n_members``, ``n_nonmembers``: pairs counted.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    tpr_at_0_1pct: float
    tpr_at_1pct: float
    n_members: int
    n_nonmembers: int

    def tpr_at(self, fpr_bound: float) -> float:
        """Largest TPR among the ROC points whose FPR does not exceed ``fpr_bound``."""
        fpr_bound = check_float("fpr_bound", fpr_bound, low=0.0, high=1.0)
        return float(_tpr_at(self.fpr, self.tpr, np.asarray(fpr_bound)))

    def downsampled(self, n_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """(fpr, tpr) of shape (n_points,): FPR 0, then log-spaced from 1/n_nonmembers to 1.

        TPR at each point is :meth:`tpr_at` (a conservative step curve), for storage and plots.
        """
        n_points = check_int("n_points", n_points, minimum=2)
        low = np.log10(1.0 / self.n_nonmembers)
        grid = np.concatenate([[0.0], np.logspace(low, 0.0, n_points - 1)])
        grid[-1] = 1.0
        return grid, _tpr_at(self.fpr, self.tpr, grid)


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    # fpr and tpr are non-decreasing and start at (0, 0): the last point within the bound wins
    return tpr[np.searchsorted(fpr, bounds, side="right") - 1]


def attack_roc(scores: Any, train_mask: Any) -> AttackROC:
    """ROC of membership scores against the true membership ``train_mask``.

    ``scores``: float (n_models, n_samples), higher = more likely member; NaN/inf pairs are
    dropped. ``train_mask``: bool (n_models, n_samples). Needs members and non-members.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    s, mask = _check_pair("scores", scores, train_mask, allow_nan=True)
    keep = np.isfinite(s)
    s, y = s[keep], mask[keep]
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InvalidInputError(
            f"attack ROC needs members and non-members with finite scores, got {n_pos} and {n_neg}"
        )
    fpr, tpr, _ = roc_curve(y, s)
    low, one = _tpr_at(fpr, tpr, np.array([0.001, 0.01]))
    return AttackROC(fpr, tpr, float(roc_auc_score(y, s)), float(low), float(one), n_pos, n_neg)


def example_vulnerability(scores: Any, train_mask: Any, *, fpr: float = 0.01) -> np.ndarray:
    """Per-example exposure: how often a member is caught at a global false-positive rate.

    The threshold is the smallest non-member score with at most ``fpr`` of the non-member
    pairs strictly above it (pooled over all models and examples). For each example, the
    result is the fraction of the models that trained on it (with a finite score) whose
    score exceeds the threshold. Higher = more exposed.

    ``scores``, ``train_mask``: (n_models, n_samples). Returns float64 (n_samples,), NaN
    where no model trained on the example.
    """
    s, mask = _check_pair("scores", scores, train_mask, allow_nan=True)
    fpr = check_float("fpr", fpr, low=0.0, high=1.0)
    finite = np.isfinite(s)
    neg = np.sort(s[finite & ~mask])[::-1]
    if len(neg) == 0:
        raise InvalidInputError("example_vulnerability needs non-member pairs with finite scores, got none")
    k = int(np.floor(fpr * len(neg) + 1e-9))  # allowed false positives
    threshold = neg[k] if k < len(neg) else -np.inf
    held = mask & finite
    caught = (held & (s > threshold)).sum(axis=0)
    n_held = held.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_held > 0, caught / n_held, np.nan)
