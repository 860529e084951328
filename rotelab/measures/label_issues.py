"""Label issues: which training labels are likely wrong, from the memorization study's models.

Every training example is out of the training subset of some models ("out" models). Those
models never saw its label, so their averaged class probabilities ``pi`` (n_classes,) are an
out-of-sample estimate of what the example's label should be, from an ensemble of dozens of
models rather than the one model per fold of k-fold cross-validation.

The flag is a posterior probability under a noisy-label model, decided at 1/2:

- an example with given label j was flipped with probability ``noise_rate[j]`` (per class,
  as confident learning's per-class thresholds), to a class drawn uniformly from the others;
- if its label is right, the given label has probability ``pi_y``; if it was flipped, the
  given label is one of the other classes, (1 - pi_y) / (n_classes - 1);
- ``P(issue) = r (1 - pi_y) / (n_classes - 1) / (r (1 - pi_y) / (n_classes - 1) + (1 - r) pi_y)``,
  r = noise_rate[j]: the flag says ``pi_y`` is below a per-class threshold that follows
  from the class's estimated noise rate.

``noise_rate`` and a temperature that sharpens or softens each out model's probabilities
before they are averaged are fitted by maximum likelihood of the given labels (EM for the
rates), so nothing is tuned on known flips. The memorization score comes with the flag:
a flagged example that is also memorized (its label fitted when seen, not predicted when
unseen) is what the ledger (:mod:`rotelab.measures.ledger`) calls likely mislabeled. It is
not a condition of the flag: with the study's models every flagged example was memorized
(digits, 10% flipped: 139 of 139 with score > 0.5), and a technique that stops the models
from fitting wrong labels should not hide them.

Which models: any cell of the study works; a cell whose models resist label noise gives
better out probabilities. On digits with 10% flipped labels (128 mlps) the flag's F1 is 0.940
from the baseline cell and 0.972 from the dropout (0.5) or augment cell (``bench/label_issues.py``).

.. caution::
   ``probs`` on an example must come from models that did not train on it for the flag to
   mean anything, and the subsets must be random (see :mod:`rotelab.measures.memorization`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import logsumexp

from rotelab.errors import InvalidInputError
from rotelab.measures.memorization import check_bool_array, memorization_scores
from rotelab.validation import check_choice, check_labels

Decision = Literal["posterior", "f1"]
DECISIONS: tuple[str, ...] = ("posterior", "f1")

#: Temperatures tried for the out models' probabilities (1 = as given; < 1 sharpens).
TEMPERATURES: tuple[float, ...] = tuple(float(t) for t in np.geomspace(0.05, 20.0, 27))
#: Probabilities are floored here before their log is taken (float16 rounds small ones to 0).
_PROB_FLOOR = 1e-7
_EM_ITERATIONS = 500
_EM_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class LabelIssues:
    """Per-example label diagnosis; arrays of shape (n_samples,) unless stated.

    ``label_issue`` (bool): P(issue) > 1/2 (or the expected-F1 cut, see :func:`label_issues`).
    ``issue_probability``: P(the given label is wrong); higher = more likely mislabeled.
    ``label_quality``: log odds that the given label is right, the continuous score to rank
    by (higher = cleaner; no saturation at probability 0 or 1).
    ``suggested_label``: the most probable true label (the given one when not flagged).
    ``confidence``: P(the true label is ``suggested_label``).
    ``out_label``, ``out_agreement``: the out models' majority prediction and the share of
    them that predict it. ``p_out_given``: their mean probability of the given label.
    ``memorization``: Feldman-Zhang score (argmax of ``probs`` as the prediction).
    ``out_probs`` (n_samples, n_classes): the out models' mean tempered probabilities ``pi``.
    ``noise_rate`` (n_classes,): fitted P(flipped | given class). ``temperature``: fitted.
    Examples no model left out get NaN, label -1 and no flag.
    """

    label_issue: np.ndarray
    issue_probability: np.ndarray
    label_quality: np.ndarray
    suggested_label: np.ndarray
    confidence: np.ndarray
    out_label: np.ndarray
    out_agreement: np.ndarray
    p_out_given: np.ndarray
    memorization: np.ndarray
    out_probs: np.ndarray
    noise_rate: np.ndarray
    temperature: float


def check_probs(probs: Any, train_mask: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``probs`` (n_models, n_samples, n_classes), ``train_mask`` (n_models,
    n_samples) and ``labels`` (n_samples,); return float64, bool and int64 arrays."""
    p = np.asarray(probs)
    if p.ndim != 3 or p.shape[2] < 2:
        raise InvalidInputError(
            f"probs must have shape (n_models, n_samples, n_classes) with n_classes >= 2, got shape {p.shape}"
        )
    if not np.issubdtype(p.dtype, np.floating):
        raise InvalidInputError(f"probs must hold floating-point probabilities, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise InvalidInputError("probs must be probabilities in [0, 1] without NaN; pass softmax outputs")
    mask = check_bool_array("train_mask", train_mask)
    if mask.shape != p.shape[:2]:
        raise InvalidInputError(
            f"probs and train_mask disagree: probs is for {p.shape[:2]} (n_models, n_samples), "
            f"train_mask has shape {mask.shape}"
        )
    y = check_labels("labels", labels, n_samples=p.shape[1], n_classes=p.shape[2])
    if not (~mask).any(axis=0).any():
        raise InvalidInputError("no example was left out by any model; the flag needs out models")
    return p, mask, y


def _out_log_probs(log_p: np.ndarray, sample: np.ndarray, n: np.ndarray, temperature: float) -> np.ndarray:
    """log of the out models' mean tempered probabilities, (n_samples, n_classes).

    ``log_p`` (n_classes, n_pairs): floored log-probabilities of every (out model, example)
    pair, class axis first so each step is elementwise; ``sample`` (n_pairs,) the pair's
    example; ``n`` (n_samples,) out models per example, all >= 1. The floor keeps the
    tempered probabilities far above float64's underflow.
    """
    z = log_p / temperature
    q = np.exp(z - z.max(axis=0))
    q /= q.sum(axis=0)
    total = np.stack([np.bincount(sample, weights=qc, minlength=len(n)) for qc in q], axis=1)
    return np.log(total) - np.log(n)[:, None]


def _given_and_rest(log_pi: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log pi_y and log(1 - pi_y), the latter summed over the other classes (exact near 1)."""
    own = np.take_along_axis(log_pi, y[:, None], axis=1)[:, 0]
    others = np.where(np.arange(log_pi.shape[1]) == y[:, None], -np.inf, log_pi)
    return own, logsumexp(others, axis=1)


def _fit_rates(log_own: np.ndarray, log_rest: np.ndarray, y: np.ndarray, n_classes: int):
    """EM for the per-class flip rates. Returns (rates (n_classes,), log odds of a clean label
    (n_samples,), log likelihood of the given labels)."""
    rates = np.full(n_classes, 0.05)
    counts = np.bincount(y, minlength=n_classes)
    flip_ll = log_rest - np.log(n_classes - 1)
    for _ in range(_EM_ITERATIONS):
        clean = np.log1p(-rates[y]) + log_own
        flipped = np.log(rates[y]) + flip_ll
        post = np.exp(flipped - np.logaddexp(clean, flipped))
        new = np.bincount(y, weights=post, minlength=n_classes) / np.maximum(counts, 1)
        new = np.clip(new, 1e-6, 1 - 1e-6)
        done = np.abs(new - rates).max() < _EM_TOLERANCE
        rates = new
        if done:
            break
    clean = np.log1p(-rates[y]) + log_own
    flipped = np.log(rates[y]) + flip_ll
    return rates, clean - flipped, float(np.logaddexp(clean, flipped).sum())


def _out_votes(probs: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Majority argmax among the out models (n_samples,) and the share that predict it."""
    pred = probs.argmax(axis=2)
    votes = np.stack([((pred == c) & out).sum(axis=0) for c in range(probs.shape[2])], axis=1)
    n = out.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, votes.argmax(axis=1), -1), np.where(n > 0, votes.max(axis=1) / n, np.nan)


def label_issues(probs: Any, train_mask: Any, labels: Any, *, decision: Decision = "posterior") -> LabelIssues:
    """Flag training labels that are likely wrong, with a suggested label and a confidence.

    Parameters
    ----------
    probs : float array of shape (n_models, n_samples, n_classes)
        Every subset model's class probabilities on every training example (float16 is fine).
    train_mask : bool array of shape (n_models, n_samples)
        Which examples each model trained on; only the others' probabilities judge a label.
    labels : int array of shape (n_samples,)
        The labels as given (possibly wrong).
    decision : "posterior" or "f1"
        "posterior": flag where P(issue) > 1/2, the label more likely wrong than right.
        "f1": flag the k most probable issues, k maximizing the expected F1 score
        2 sum(top k P) / (k + sum(all P)) under the fitted (calibrated) probabilities; it
        flags more, trading precision for recall where many labels are uncertain.

    Returns
    -------
    :class:`LabelIssues`; ``issue_probability`` higher = more likely mislabeled,
    ``label_quality`` higher = more likely correct.

    Caution: the subsets must be random and ``probs`` each model's own outputs; see the
    module docstring for the noise model behind the flag.
    """
    probs, mask, y = check_probs(probs, train_mask, labels)
    decision = check_choice("decision", decision, DECISIONS)
    n_classes = probs.shape[2]
    has_out = (~mask).any(axis=0)
    keep = np.flatnonzero(has_out)
    models, sample = np.nonzero(~mask[:, keep])  # every (out model, example) pair
    log_p = np.log(np.maximum(probs[:, keep][models, sample].T, _PROB_FLOOR))  # (n_classes, n_pairs)
    n_out = np.bincount(sample, minlength=len(keep))
    best = None
    for t in TEMPERATURES:
        log_pi = _out_log_probs(log_p, sample, n_out, t)
        own, rest = _given_and_rest(log_pi, y[keep])
        fit = _fit_rates(own, rest, y[keep], n_classes)
        if best is None or fit[2] > best[0][2]:
            best = (fit, t, log_pi)
    (rates, log_odds, _), temperature, log_pi = best
    return _diagnose(probs, mask, y, has_out, rates, log_odds, temperature, log_pi, decision)


def _f1_cut(p_issue: np.ndarray) -> np.ndarray:
    """Bool (n_samples,): the k largest of ``p_issue`` (NaN never), k maximizing the expected
    F1 2 sum(top k) / (k + sum(all)); ties broken by index."""
    p = np.nan_to_num(p_issue, nan=0.0)
    order = np.lexsort((np.arange(len(p)), -p))
    k = np.arange(1, len(p) + 1)
    expected = 2 * np.cumsum(p[order]) / (k + p.sum())
    flag = np.zeros(len(p), dtype=bool)
    flag[order[: int(np.argmax(expected)) + 1]] = True
    return flag & ~np.isnan(p_issue)


def _diagnose(probs, mask, y, has_out, rates, log_odds, temperature, log_pi, decision) -> LabelIssues:
    """Assemble :class:`LabelIssues` from the fitted model (internal)."""
    n, n_classes = len(y), probs.shape[2]
    quality = np.full(n, np.nan)
    quality[has_out] = log_odds
    p_issue = 1.0 / (1.0 + np.exp(np.clip(quality, -700, 700)))
    pi = np.full((n, n_classes), np.nan)
    pi[has_out] = np.exp(log_pi)
    other = np.where(np.arange(n_classes) == y[:, None], -np.inf, np.nan_to_num(pi, nan=-np.inf))
    alt = other.argmax(axis=1)
    # P(true = k | flipped) is proportional to pi_k over the other classes
    alt_share = np.take_along_axis(np.nan_to_num(pi), alt[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        alt_conf = p_issue * alt_share / (1.0 - np.take_along_axis(np.nan_to_num(pi), y[:, None], axis=1)[:, 0])
    correct = probs.argmax(axis=2) == y[None, :]
    memo = memorization_scores(correct, mask).score
    flag = has_out & ((p_issue > 0.5) if decision == "posterior" else _f1_cut(np.where(has_out, p_issue, np.nan)))
    suggested = np.where(~has_out, -1, np.where(flag, alt, y))
    confidence = np.where(~has_out, np.nan, np.where(flag, alt_conf, 1.0 - p_issue))
    out_label, agreement = _out_votes(probs, ~mask)
    out = (~mask).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_given = (np.take_along_axis(probs, y[None, :, None], axis=2)[..., 0] * out).sum(axis=0) / out.sum(axis=0)
    return LabelIssues(flag, np.where(has_out, p_issue, np.nan), quality, suggested, confidence, out_label,
                       agreement, p_given, memo, pi, rates, float(temperature))
