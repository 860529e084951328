"""The per-example ledger: which examples does each technique stop memorizing?

``memorization --techniques baseline,augment,dropout`` trains the same subset models (same
subsets, same seeds) once per technique cell, so every example has a memorization score in
every cell, and the cells differ only by the technique. The ledger puts those scores side by
side and sorts every example into one category:

- ``likely_mislabeled``: memorized by the baseline, and the out models disagree with the
  label in every cell: no technique makes the label predictable from the other examples;
  each technique either still memorizes it or stops fitting it at all;
- ``regularized_away``: memorized by the baseline, not under at least one technique, and
  not the above: atypical, and that technique works on it;
- ``always_memorized``: memorized in every cell, and not the above;
- ``technique_only``: not memorized by the baseline, memorized under a technique: worth a look;
- ``never_memorized``: memorized in no cell.

Why not "memorized in every cell" for mislabeled examples: a technique that resists label
noise stops fitting a wrong label rather than memorizing it. On digits with 10% flipped
labels, 128 mlps, dropout 0.5 gives every flipped example a score of about 0 (the models
that trained on it do not predict its label either), so that rule would catch 4% of them.

"Memorized" means a memorization score of at least ``threshold`` (default 0.5: the models
that trained on the example predict its label at least half as often again as those that
did not). Shapes: ``correct`` per cell and ``train_mask`` are (n_models, n_samples).

.. caution::
   The comparison is paired only if every cell used the same subsets and seeds; otherwise
   the differences mix the technique with the draw of the subsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from rotelab.errors import InvalidInputError
from rotelab.measures.memorization import _scores, check_memorization_inputs
from rotelab.validation import check_float

CATEGORIES: tuple[str, ...] = (
    "likely_mislabeled", "regularized_away", "always_memorized", "technique_only", "never_memorized",
)


@dataclass(frozen=True, eq=False)
class Ledger:
    """One row per example, one column per cell; ``cells`` in the order given.

    ``score``, ``stderr``, ``p_out`` (n_cells, n_samples): each cell's memorization score
    (higher = more memorized), its standard error, and the share of out models predicting
    the given label. ``vulnerability`` (n_cells, n_samples): as given (e.g. LiRA's
    :func:`~rotelab.measures.membership.example_vulnerability`), NaN where not given.
    ``memorized`` (n_cells, n_samples) bool. ``out_disagrees`` (n_samples,) bool.
    ``category`` (n_samples,) str, one of :data:`CATEGORIES`. ``baseline``: the cell the
    others are compared with.
    """

    cells: tuple[str, ...]
    baseline: str
    score: np.ndarray
    stderr: np.ndarray
    p_out: np.ndarray
    vulnerability: np.ndarray
    memorized: np.ndarray
    out_disagrees: np.ndarray
    category: np.ndarray

    def counts(self) -> dict[str, int]:
        """Examples per category, every category present (0 when empty), in :data:`CATEGORIES` order."""
        return {c: int((self.category == c).sum()) for c in CATEGORIES}


@dataclass(frozen=True, eq=False)
class ScoreDifference:
    """Paired difference of memorization scores, cell a minus cell b; fields (n_samples,).

    ``difference`` > 0: a memorizes the example more. ``low``, ``high``: the normal
    interval at ``confidence``. NaN where a side has fewer than 2 models.
    """

    difference: np.ndarray
    stderr: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float


def _check_cells(correct: Any, train_mask: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    if not isinstance(correct, Mapping) or not correct:
        raise InvalidInputError(
            f"correct must be a non-empty mapping of cell name to a (n_models, n_samples) array, "
            f"got {type(correct).__name__}{' (empty)' if isinstance(correct, Mapping) else ''}"
        )
    cells = {}
    for name, arr in correct.items():
        cells[str(name)], mask = check_memorization_inputs(arr, train_mask)
    return cells, mask


def _check_per_cell(name: str, values: Mapping[str, Any] | None, cells: list[str], n: int) -> np.ndarray:
    out = np.full((len(cells), n), np.nan)
    if values is None:
        return out
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"{name} must be a mapping of cell name to a (n_samples,) array, got {type(values).__name__}")
    unknown = sorted(set(map(str, values)) - set(cells))
    if unknown:
        raise InvalidInputError(f"{name} has cells {unknown} that are not in correct ({', '.join(cells)})")
    for k, v in values.items():
        arr = np.asarray(v, dtype=np.float64)
        if arr.shape != (n,):
            raise InvalidInputError(f"{name}[{k!r}] must have shape ({n},) (n_samples,), got shape {arr.shape}")
        out[cells.index(str(k))] = arr
    return out


def example_ledger(
    correct: Mapping[str, Any],
    train_mask: Any,
    *,
    baseline: str | None = None,
    vulnerability: Mapping[str, Any] | None = None,
    out_disagrees: Any | None = None,
    threshold: float = 0.5,
) -> Ledger:
    """Compare every example's memorization across technique cells and categorize it.

    Parameters
    ----------
    correct : mapping of cell name -> bool array of shape (n_models, n_samples)
        Whether model m of that cell predicts example i's given label; the same models
        (subsets, seeds) in every cell.
    train_mask : bool array of shape (n_models, n_samples), shared by the cells.
    baseline : the cell without a technique (default: the first cell).
    vulnerability : optional mapping of cell name -> float (n_samples,), carried along.
    out_disagrees : optional bool (n_samples,)
        Whether the out models disagree with the given label, e.g. ``label_issues(...).label_issue``.
        Default: in every cell, fewer than half of the out models predict the given label.
    threshold : score at which an example counts as memorized, in (0, 1].

    Returns :class:`Ledger`; a NaN score (no in or no out model) counts as not memorized.

    Example 0 is predicted only by the models that trained on it, in both cells; dropout
    makes every model predict example 1:

    >>> mask = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=bool)
    >>> dropout = mask.copy()
    >>> dropout[:, 1] = True
    >>> led = example_ledger({"baseline": mask, "dropout": dropout}, mask)
    >>> led.category.tolist(), led.score.tolist()
    (['likely_mislabeled', 'regularized_away'], [[1.0, 1.0], [1.0, 0.0]])
    """
    cells, mask = _check_cells(correct, train_mask)
    names = list(cells)
    baseline = names[0] if baseline is None else str(baseline)
    if baseline not in cells:
        raise InvalidInputError(f"baseline {baseline!r} is not one of the cells: {', '.join(names)}")
    threshold = check_float("threshold", threshold, low=0.0, high=1.0, low_open=True)
    n = mask.shape[1]
    vul = _check_per_cell("vulnerability", vulnerability, names, n)
    est = [_scores(cells[c], mask) for c in names]
    score = np.stack([e.score for e in est])
    p_out = np.stack([e.p_out for e in est])
    if out_disagrees is None:
        disagrees = (np.nan_to_num(p_out, nan=1.0) < 0.5).all(axis=0)
    else:
        disagrees = np.asarray(out_disagrees)
        if disagrees.shape != (n,) or disagrees.dtype != bool:
            raise InvalidInputError(
                f"out_disagrees must be a bool array of shape ({n},), got dtype {disagrees.dtype} shape {disagrees.shape}"
            )
    memorized = np.nan_to_num(score, nan=-np.inf) >= threshold
    category = _categorize(memorized, disagrees, names.index(baseline))
    return Ledger(tuple(names), baseline, score, np.stack([e.stderr for e in est]), p_out, vul, memorized,
                  disagrees, category)


def _categorize(memorized: np.ndarray, disagrees: np.ndarray, base: int) -> np.ndarray:
    """Category per example from memorized (n_cells, n_samples) and disagrees (n_samples,)."""
    every, some = memorized.all(axis=0), memorized.any(axis=0)
    at_base = memorized[base]
    category = np.full(memorized.shape[1], "never_memorized", dtype=f"<U{max(map(len, CATEGORIES))}")
    category[~at_base & some] = "technique_only"
    category[at_base & ~every] = "regularized_away"
    category[at_base & every] = "always_memorized"
    category[at_base & disagrees] = "likely_mislabeled"
    return category


def paired_score_difference(
    correct_a: Any, correct_b: Any, train_mask: Any, *, confidence: float = 0.95
) -> ScoreDifference:
    """Difference of two cells' memorization scores with a paired confidence interval.

    Model m of cell a and model m of cell b trained on the same subset with the same seed,
    so d_m = correct_a[m, i] - correct_b[m, i] pairs them. The difference of scores is
    mean(d | models that trained on i) - mean(d | models that did not), and its standard
    error sqrt(var_in(d) / n_in + var_out(d) / n_out) with sample variances (ddof=1): the
    pairing removes what the two cells share (an example hard for a subset is hard in both).

    ``correct_a``, ``correct_b``, ``train_mask``: bool (n_models, n_samples). Returns
    :class:`ScoreDifference` with fields of shape (n_samples,); higher = a memorizes more.
    """
    a, mask = check_memorization_inputs(correct_a, train_mask)
    b, _ = check_memorization_inputs(correct_b, train_mask)
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    d = a.astype(np.float64) - b.astype(np.float64)
    parts = []
    for side in (mask, ~mask):
        n = side.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, (d * side).sum(axis=0) / n, np.nan)
            var = np.where(n > 1, (((d - mean) ** 2) * side).sum(axis=0) / (n - 1), np.nan)
        parts.append((mean, var / n))
    diff = parts[0][0] - parts[1][0]
    se = np.sqrt(parts[0][1] + parts[1][1])
    q = float(norm.ppf(0.5 + confidence / 2))
    return ScoreDifference(diff, se, diff - q * se, diff + q * se, confidence)
