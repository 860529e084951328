"""Per-example memorization and influence from many models trained on random subsets.

Feldman & Zhang (2020), "What Neural Networks Memorize and Why": train ``n_models`` models,
each on a random subset of the training pool, and compare how often an example's given
label is predicted by the models that trained on it with the models that did not.

Shapes, model axis first: ``correct`` and ``train_mask`` are ``(n_models, n_samples)`` bool.

.. caution::
   The estimators are unbiased only when every model's training subset was drawn at
   random, independently of the examples. The ``out`` models must not have seen the
   example in any other way (no duplicates, no augmentation leak); ``correct`` must be
   each model's prediction on the example as given, including its (possibly noisy) label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rotelab.errors import InvalidInputError
from rotelab.validation import check_choice, check_int

Correlation = Literal["pearson", "spearman"]
CORRELATIONS: tuple[str, ...] = ("pearson", "spearman")

_FIX = "train more models or use a subset fraction nearer 0.5"


def check_bool_array(name: str, value: Any) -> np.ndarray:
    """Return a 2-D bool array of shape (n_models, n_samples); accept 0/1 ints or floats."""
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must have shape (n_models, n_samples), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
        raise InvalidInputError(f"{name} must be bool (or 0/1), got dtype {arr.dtype} with other values")
    return arr.astype(bool)


def n_in_out(train_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count the models that did (``n_in``) and did not (``n_out``) train on each example.

    ``train_mask``: bool of shape (n_models, n_samples). Returns two int64 arrays of
    shape (n_samples,).
    """
    n_in = np.asarray(train_mask, dtype=bool).sum(axis=0, dtype=np.int64)
    return n_in, len(train_mask) - n_in


def check_memorization_inputs(
    correct: Any, train_mask: Any, *, same_samples: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``correct`` and ``train_mask``; return both as bool arrays.

    ``correct``: (n_models, n_samples) or, with ``same_samples=False``, (n_models, n_test)
    for held-out test examples. ``train_mask``: (n_models, n_samples). Raises
    :class:`InvalidInputError` if the shapes disagree, an array is not bool-like, or no
    training example has both a model that trained on it and one that did not.
    """
    correct = check_bool_array("correct", correct)
    train_mask = check_bool_array("train_mask", train_mask)
    if same_samples and correct.shape != train_mask.shape:
        raise InvalidInputError(
            f"correct and train_mask must have the same shape (n_models, n_samples), "
            f"got {correct.shape} and {train_mask.shape}"
        )
    if correct.shape[0] != train_mask.shape[0]:
        raise InvalidInputError(
            f"inconsistent numbers of models: correct has {correct.shape[0]}, "
            f"train_mask has {train_mask.shape[0]}"
        )
    n_in, n_out = n_in_out(train_mask)
    if not ((n_in > 0) & (n_out > 0)).any():
        raise InvalidInputError(
            f"no example was both in and out of some model's training subset "
            f"({train_mask.shape[0]} models); {_FIX}"
        )
    return correct, train_mask


@dataclass(frozen=True, eq=False)
class MemorizationEstimate:
    """Per-example memorization estimate; every field has shape (n_samples,).

    ``score = p_in - p_out``: higher = more memorized (the label is predicted mostly by the
    models that saw the example). ``stderr`` is the standard error of that difference of two
    independent proportions, computed as Agresti & Caffo (2000) advise: each proportion with one
    success and one failure added, ``p̃ = (x + 1) / (n + 2)``, ``se² = Σ p̃(1 − p̃) / (n + 2)``.
    The plain plug-in error is 0 whenever every "in" model is right and every "out" model wrong
    (score 1), exactly where a researcher most needs an error bar. ``score`` and ``stderr`` are
    NaN where ``n_in`` or ``n_out`` is 0.
    """

    score: np.ndarray
    stderr: np.ndarray
    p_in: np.ndarray
    p_out: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` broadcasting ``den`` over trailing axes, NaN where ``den == 0``."""
    den = den.reshape(den.shape + (1,) * (num.ndim - den.ndim)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _scores(correct: np.ndarray, train_mask: np.ndarray) -> MemorizationEstimate:
    n_in, n_out = n_in_out(train_mask)
    x_in, x_out = (correct & train_mask).sum(axis=0), (correct & ~train_mask).sum(axis=0)
    p_in, p_out = _ratio(x_in, n_in), _ratio(x_out, n_out)
    a_in, a_out = (x_in + 1) / (n_in + 2), (x_out + 1) / (n_out + 2)  # Agresti–Caffo: never 0 or 1
    var = a_in * (1 - a_in) / (n_in + 2) + a_out * (1 - a_out) / (n_out + 2)
    stderr = np.where((n_in > 0) & (n_out > 0), np.sqrt(var), np.nan)
    return MemorizationEstimate(p_in - p_out, stderr, p_in, p_out, n_in, n_out)


def memorization_scores(correct: Any, train_mask: Any) -> MemorizationEstimate:
    """Feldman-Zhang memorization: mem(i) = P[correct | i in subset] - P[correct | i out].

    Parameters
    ----------
    correct : bool array of shape (n_models, n_samples)
        Whether model m predicts the given label of training example i.
    train_mask : bool array of shape (n_models, n_samples)
        Whether example i was in model m's training subset.

    Returns
    -------
    MemorizationEstimate with fields of shape (n_samples,); higher score = more memorized.
    Examples no model trained on, or every model trained on, get NaN score and stderr.

    Caution: unbiased only when the subsets were drawn at random (see the module docstring).

    >>> est = memorization_scores([[1, 1], [0, 1]], [[1, 0], [0, 1]])
    >>> est.score.tolist(), est.n_in.tolist()
    ([1.0, 0.0], [1, 1])
    """
    return _scores(*check_memorization_inputs(correct, train_mask))


def influence_scores(correct_test: Any, train_mask: Any) -> np.ndarray:
    """Feldman-Zhang influence of each training example on each test example.

    infl(i, j) = P[correct on test j | i in subset] - P[correct on test j | i not in subset].

    Parameters
    ----------
    correct_test : bool array of shape (n_models, n_test)
        Whether model m predicts the label of test example j.
    train_mask : bool array of shape (n_models, n_train)
        Whether training example i was in model m's subset.

    Returns
    -------
    float64 array of shape (n_train, n_test); higher = training on i helps test j more.
    Rows are NaN for training examples with no in or no out model. With few models the
    estimates are noisy; only large values (for example > 0.15 with thousands of models)
    are trustworthy. Caution: unbiased only for random subsets.
    """
    correct_test, train_mask = check_memorization_inputs(correct_test, train_mask, same_samples=False)
    c = correct_test.astype(np.float64)
    m = train_mask.astype(np.float64)
    n_in, n_out = n_in_out(train_mask)
    hits_in = m.T @ c  # (n_train, n_test): correct models among those that trained on i
    hits_out = c.sum(axis=0)[None, :] - hits_in
    return _ratio(hits_in, n_in) - _ratio(hits_out, n_out)


def top_influence_pairs(influence: Any, *, k: int = 20) -> list[tuple[int, int, float]]:
    """The ``k`` largest entries of an (n_train, n_test) influence matrix.

    Returns up to ``k`` tuples ``(train_index, test_index, value)``, value descending (ties
    in row-major order); NaN entries are ignored, so fewer than ``k`` may come back.
    """
    arr = np.asarray(influence, dtype=np.float64)
    if arr.ndim != 2:
        raise InvalidInputError(f"influence must have shape (n_train, n_test), got shape {arr.shape}")
    k = check_int("k", k, minimum=1)
    flat = arr.ravel()
    cand = np.flatnonzero(~np.isnan(flat))
    if len(cand) > k:  # keep the k largest and anything tied with the k-th, then sort those
        kth = np.partition(flat[cand], len(cand) - k)[len(cand) - k]
        cand = cand[flat[cand] >= kth]
    order = cand[np.lexsort((cand, -flat[cand]))][:k]
    rows, cols = np.unravel_index(order, arr.shape)
    return [(int(r), int(c), float(flat[o])) for r, c, o in zip(rows, cols, order)]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    return _pearson(rankdata(a), rankdata(b))


_CORRELATION_FUNCS = {"pearson": _pearson, "spearman": _spearman}


#: Below this split-half correlation two halves of the models rank the examples differently, and
#: a study says its scores are unstable (a rule of thumb, not a test).
UNSTABLE_BELOW = 0.5


def split_half_correlation(
    correct: Any, train_mask: Any, *, rng: np.random.Generator, method: Correlation = "pearson"
) -> float:
    """Reliability of memorization scores: correlation between two disjoint halves of models.

    The models are shuffled with ``rng.permutation(n_models)``; the first ``n_models // 2``
    form one half, the rest the other. Scores are computed on each half and correlated
    (``method``: "pearson" or "spearman", average ranks for ties) over the examples whose
    score is finite in both. Higher = more reliable scores; near 0 means they are noise.
    Returns NaN if the scores of either half are constant.

    ``correct``, ``train_mask``: bool of shape (n_models, n_samples), n_models >= 4.
    Caution: unbiased only for random subsets.
    """
    correct, train_mask = check_memorization_inputs(correct, train_mask)
    method = check_choice("correlation method", method, CORRELATIONS)
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n_models = correct.shape[0]
    if n_models < 4:
        raise InvalidInputError(f"split-half correlation needs at least 4 models, got {n_models}; {_FIX}")
    perm = rng.permutation(n_models)
    a, b = perm[: n_models // 2], perm[n_models // 2 :]
    sa = _scores(correct[a], train_mask[a]).score
    sb = _scores(correct[b], train_mask[b]).score
    both = np.isfinite(sa) & np.isfinite(sb)
    if both.sum() < 3:
        raise InvalidInputError(
            f"only {int(both.sum())} examples have in and out models in both halves of "
            f"{n_models} models (need 3); {_FIX}"
        )
    return _CORRELATION_FUNCS[method](sa[both], sb[both])
